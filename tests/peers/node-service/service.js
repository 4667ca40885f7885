// A small Node.js HTTP service traced by the REAL pinpoint-node-agent (from the stand-in
// collector's node_modules), reporting straight to the collector named by the
// PINPOINT_* environment variables. The agent must be required first.
//
//   GET /hello            answers "hello from node"
//   GET /call?url=URL     calls URL with http.request (the agent adds Pinpoint-* headers)
//                         and answers with the callee's body
//
// Prints one JSON line {"port": N} once it listens; exits when stdin closes.
'use strict'
require('../pinpoint-collector/node_modules/pinpoint-node-agent')
const http = require('http')

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost')
  if (url.pathname === '/call') {
    const target = url.searchParams.get('url')
    // http.request, not http.get: the agent wraps the module's `request` export only.
    const out = http.request(target, (up) => {
      let body = ''
      up.setEncoding('utf8')
      up.on('data', (c) => { body += c })
      up.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain' })
        res.end(`node got ${up.statusCode}: ${body}`)
      })
    })
    out.on('error', (e) => {
      res.writeHead(502)
      res.end(String(e))
    })
    out.end()
    return
  }
  res.writeHead(200, { 'content-type': 'text/plain' })
  res.end('hello from node')
})

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n')
})
process.stdin.on('end', () => setTimeout(() => process.exit(0), 3000))
process.stdin.resume()
