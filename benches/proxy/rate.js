// Fixed-rate HTTP load with latency percentiles, for the proxy benchmark: sends RATE
// requests/s for SECONDS over keep-alive connections (open-loop: a request is started
// on schedule whether or not earlier ones finished), each with a traceparent header so
// the proxy translates it; prints JSON {sent, ok, errors, p50_us, p90_us, p99_us, max_us}.
// usage: node rate.js URL RATE SECONDS
'use strict'
const http = require('http')
const [url, rate, seconds] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])]
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 })
const lat = []
let sent = 0; let ok = 0; let errors = 0
const total = rate * seconds
const start = process.hrtime.bigint()
function hex (n) { let s = ''; for (let i = 0; i < n; i++) s += '0123456789abcdef'[Math.floor(Math.random() * 16)]; return s }
function one () {
  const t0 = process.hrtime.bigint()
  const req = http.request(url, { agent, headers: { traceparent: `00-${hex(32)}-${hex(16)}-01` } }, (res) => {
    res.resume()
    res.on('end', () => {
      lat.push(Number(process.hrtime.bigint() - t0) / 1000)
      if (res.statusCode === 200) ok++; else errors++
      if (ok + errors === total) done()
    })
  })
  req.on('error', () => { errors++; if (ok + errors === total) done() })
  req.end()
}
function tick () {
  const due = Math.min(total, Math.floor(Number(process.hrtime.bigint() - start) / 1e9 * rate))
  while (sent < due) { sent++; one() }
  if (sent < total) setTimeout(tick, 1)
}
function done () {
  lat.sort((a, b) => a - b)
  const p = (q) => Math.round(lat[Math.min(lat.length - 1, Math.floor(q * lat.length))])
  console.log(JSON.stringify({ sent, ok, errors, p50_us: p(0.5), p90_us: p(0.9), p99_us: p(0.99), max_us: Math.round(lat[lat.length - 1]) }))
  process.exit(0)
}
tick()
