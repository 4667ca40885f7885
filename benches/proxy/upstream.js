// A minimal HTTP upstream for the proxy benchmark: answers every request with "ok".
// usage: node upstream.js PORT
'use strict'
require('http').createServer((req, res) => {
  req.resume()
  req.on('end', () => res.end('ok'))
}).listen(Number(process.argv[2]), '127.0.0.1')
