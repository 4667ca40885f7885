'use strict';
// A real Node service instrumented by the real pinpoint-node-agent (0.8.7, from the
// stand-in collector's node_modules). Configured by the agent's own environment
// variables (PINPOINT_*). GET /call?to=URL calls URL with http.request (the agent
// records it and propagates its headers; EXTRA_HEADERS adds headers given by the
// test as JSON); any other path answers "ok". Prints {"port":N} once listening.
require('../pinpoint-collector/node_modules/pinpoint-node-agent');
const http = require('node:http');

const extra = process.env.EXTRA_HEADERS ? JSON.parse(process.env.EXTRA_HEADERS) : {};

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://local');
  if (url.pathname === '/call') {
    const to = url.searchParams.get('to');
    const out = http.request(to, { headers: extra }, (r) => {
      let body = '';
      r.on('data', (d) => { body += d; });
      r.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`called ${r.statusCode}: ${body}`);
      });
    });
    out.on('error', (e) => {
      res.writeHead(502);
      res.end(String(e));
    });
    out.end();
    return;
  }
  if (url.pathname === '/fail') {
    res.writeHead(500);
    res.end('fail');
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('ok');
});
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
