#!/usr/bin/env node
'use strict';
// A stand-in Pinpoint collector for tests.
//
// Serves v1.Agent, v1.Metadata, v1.Span and v1.Stat from the service
// definitions Pinpoint generated for pinpoint-node-agent (Service_grpc_pb.js),
// checks the gRPC headers the way the real collector does, decodes every
// message with the agent's generated classes (the wire check) and with the
// project's own .proto files (for exact JSON: 64-bit ids as strings), and
// records what it received. An HTTP control endpoint serves the recording.
//
//   node server.js --port 0 --control-port 0
//   -> {"agent":40001,"stat":40001,"span":40001,"control":40002}
//
// See README.md for all options and the control API.

const fs = require('node:fs');
const http = require('node:http');
const grpc = require('@grpc/grpc-js');

const schema = require('./lib/schema');
const agentPb = require('./lib/agent-pb');
const calltree = require('./calltree');
const { checkWire } = require('./lib/wire-check');

const emptyPb = require('google-protobuf/google/protobuf/empty_pb.js');

const ID_PATTERN = /^[a-zA-Z0-9._-]+$/;
const ID_MAX_LENGTH = 24;
const AGENT_NAME_MAX_LENGTH = 255;
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
const CONNECTION_AGE_MS = 3 * 60 * 60 * 1000;
const NAMED_HEADERS = ['agentid', 'applicationname', 'starttime', 'servicetype', 'agentname', 'socketid'];
const TRANSPORT_HEADERS = new Set(['user-agent', 'content-type', 'te', 'grpc-accept-encoding', 'grpc-encoding',
  'grpc-timeout', 'accept-encoding']);

// ---------------------------------------------------------------- options

const USAGE = `usage: node server.js [options]
  --port P                  serve every service on one port (0 = any free port)
  --agent-port P            Agent + Metadata port (default 9991)
  --stat-port P             Stat port (default 9992)
  --span-port P             Span port (default 9993)
  --control-port P          HTTP control port (default 0 = any free port)
  --host H                  bind address (default 127.0.0.1)
  --version 3.0|3.1         3.0 answers UNIMPLEMENTED to Span/SendSpanBatch (default 3.1)
  --max-app-name-length N   applicationname length limit (default 24)
  --record FILE             also append every recorded entry to FILE as JSON lines
  --blackhole               count everything, keep nothing (load tests)
  --proto-dir DIR           the project's .proto files (default ../../../proto/pinpoint)
  --exit-with-stdin         exit when stdin closes (keeps a crashed parent from leaking us)
`;

function parseArgs(argv) {
  const opts = {
    port: undefined, agentPort: undefined, statPort: undefined, spanPort: undefined,
    controlPort: 0, host: '127.0.0.1', version: '3.1', maxAppNameLength: ID_MAX_LENGTH,
    record: undefined, blackhole: false, protoDir: undefined, exitWithStdin: false,
  };
  const num = (name, v) => {
    if (v === undefined || !/^\d+$/.test(v) || Number(v) > 65535) throw new Error(`${name} needs a port number 0..65535, got ${v}`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => (inline !== undefined ? inline : argv[++i]);
    switch (flag) {
      case '--port': opts.port = num(flag, value()); break;
      case '--agent-port': opts.agentPort = num(flag, value()); break;
      case '--stat-port': opts.statPort = num(flag, value()); break;
      case '--span-port': opts.spanPort = num(flag, value()); break;
      case '--control-port': opts.controlPort = num(flag, value()); break;
      case '--host': opts.host = value(); break;
      case '--version': {
        const v = value();
        if (v !== '3.0' && v !== '3.1') throw new Error(`--version must be 3.0 or 3.1, got ${v}`);
        opts.version = v;
        break;
      }
      case '--max-app-name-length': {
        const v = value();
        if (!/^\d+$/.test(v || '') || Number(v) < 1) throw new Error(`--max-app-name-length needs a positive number, got ${v}`);
        opts.maxAppNameLength = Number(v);
        break;
      }
      case '--record': opts.record = value(); break;
      case '--blackhole': opts.blackhole = true; break;
      case '--proto-dir': opts.protoDir = value(); break;
      case '--exit-with-stdin': opts.exitWithStdin = true; break;
      case '--help': case '-h': opts.help = true; break;
      default: throw new Error(`unknown option ${a}`);
    }
  }
  return opts;
}

// ---------------------------------------------------------------- headers

function headersOf(call) {
  const map = call.metadata.getMap();
  const out = {};
  for (const k of NAMED_HEADERS) out[k] = map[k] === undefined ? null : String(map[k]);
  for (const [k, v] of Object.entries(map)) {
    if (k in out || TRANSPORT_HEADERS.has(k) || k.startsWith(':')) continue;
    out[k] = Buffer.isBuffer(v) ? v.toString('base64') : String(v);
  }
  return out;
}

function checkId(headers, key, maxLength) {
  const v = headers[key];
  if (v === null) return `${key} header is missing`;
  if (!ID_PATTERN.test(v) || v.length > maxLength) return `Invalid ${key}`;
  return null;
}

/** Same checks, same order and same descriptions as the collector's header reader. */
function validateHeaders(headers, opts) {
  const agentId = checkId(headers, 'agentid', ID_MAX_LENGTH);
  if (agentId) return agentId;
  const name = headers.agentname;
  if (name !== null && name !== '') {
    if (!ID_PATTERN.test(name)) return 'Invalid agentname';
    if (name.length > AGENT_NAME_MAX_LENGTH) return 'Invalid agentname.length';
  }
  const app = checkId(headers, 'applicationname', opts.maxAppNameLength);
  if (app) return app;
  const st = headers.starttime;
  if (st === null) return 'starttime header is missing';
  if (!/^[+-]?\d+$/.test(st)) return 'unsupported format';
  const n = BigInt(st);
  if (n < I64_MIN || n > I64_MAX) return 'unsupported format';
  return null;
}

// ---------------------------------------------------------------- the store

function methodKey(service, method) {
  return `${service}/${method}`;
}

class Store {
  constructor(opts) {
    this.opts = opts;
    this.messages = [];
    this.rejections = [];
    this.stats = new Map();
    this.recordStream = opts.record ? fs.createWriteStream(opts.record, { flags: 'a' }) : null;
    if (this.recordStream) {
      this.recordStream.on('error', (e) => process.stderr.write(`collector: --record ${opts.record}: ${e.message}\n`));
    }
  }

  counter(service, method) {
    const key = methodKey(service, method);
    let c = this.stats.get(key);
    if (!c) {
      c = { calls: 0, messages: 0, headerRejections: 0, rejectedSpans: 0, decodeErrors: 0 };
      this.stats.set(key, c);
    }
    return c;
  }

  write(entry) {
    if (this.recordStream) this.recordStream.write(`${JSON.stringify(entry)}\n`);
  }

  addMessage(entry) {
    this.counter(entry.service, entry.method).messages += 1;
    if (this.opts.blackhole) return;
    this.messages.push(entry);
    this.write({ kind: 'message', ...entry });
  }

  addRejection(entry) {
    this.counter(entry.service, entry.method).headerRejections += 1;
    if (this.opts.blackhole) return;
    this.rejections.push(entry);
    this.write({ kind: 'header-rejection', ...entry });
  }

  reset() {
    this.messages = [];
    this.rejections = [];
    for (const c of this.stats.values()) for (const k of Object.keys(c)) c[k] = 0;
  }

  snapshotStats() {
    const methods = {};
    for (const [k, v] of [...this.stats.entries()].sort()) methods[k] = { ...v };
    return {
      version: this.opts.version,
      blackhole: this.opts.blackhole,
      recorded: this.messages.length,
      rejections: this.rejections.length,
      methods,
    };
  }
}

// ---------------------------------------------------------------- services

/**
 * Method table. `agentDef` comes from the agent's Service_grpc_pb.js; the
 * three methods newer than that code are defined from our own schema.
 */
function buildMethods(root) {
  const types = schema.v1Types(root);
  const svc = agentPb.services;
  const m = (service, name, agentDef, requestType, responseType, kind, minVersion = '3.0') =>
    ({ service, name, agentDef, requestType: types.get(requestType), responseType, kind, minVersion });
  return [
    m('Agent', 'RequestAgentInfo', svc.AgentService.requestAgentInfo, 'PAgentInfo', 'PResult', 'unary'),
    m('Agent', 'PingSession', svc.AgentService.pingSession, 'PPing', 'PPing', 'bidi'),
    m('Metadata', 'RequestApiMetaData', svc.MetadataService.requestApiMetaData, 'PApiMetaData', 'PResult', 'unary'),
    m('Metadata', 'RequestStringMetaData', svc.MetadataService.requestStringMetaData, 'PStringMetaData', 'PResult', 'unary'),
    m('Metadata', 'RequestSqlMetaData', svc.MetadataService.requestSqlMetaData, 'PSqlMetaData', 'PResult', 'unary'),
    m('Metadata', 'RequestSqlUidMetaData', null, 'PSqlUidMetaData', 'PResult', 'unary'),
    m('Metadata', 'RequestExceptionMetaData', null, 'PExceptionMetaData', 'PResult', 'unary'),
    m('Span', 'SendSpan', svc.SpanService.sendSpan, 'PSpanMessage', 'Empty', 'clientStream'),
    m('Span', 'SendSpanBatch', null, 'PSpanMessageBatch', 'PSpanResultBatch', 'unary', '3.1'),
    m('Stat', 'SendAgentStat', svc.StatService.sendAgentStat, 'PStatMessage', 'Empty', 'clientStream'),
  ];
}

const identity = (b) => b;

/** A grpc-js method definition that hands the handler the raw request bytes. */
function grpcDefinition(root, method) {
  const lowerName = method.name.charAt(0).toLowerCase() + method.name.slice(1);
  if (method.agentDef) {
    // the agent's definition (path, streaming kind, response serializer);
    // requests are decoded in the handler so that bad bytes never escape
    return [lowerName, { ...method.agentDef, requestDeserialize: identity, originalName: lowerName }];
  }
  const resType = schema.v1Types(root).get(method.responseType);
  return [lowerName, {
    path: `/v1.${method.service}/${method.name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (obj) => schema.encodeFromObject(method.requestType, obj),
    requestDeserialize: identity,
    responseSerialize: (obj) => schema.encodeFromObject(resType, obj),
    responseDeserialize: (b) => schema.decodeToJson(resType, b),
    originalName: lowerName,
  }];
}

function agentResponse(method, fields) {
  if (method.responseType === 'Empty') return new emptyPb.Empty();
  if (!method.agentDef) return fields;
  const cls = agentPb.classes.get(method.responseType);
  const res = new cls();
  if (method.responseType === 'PResult') {
    res.setSuccess(Boolean(fields.success));
    if (fields.message) res.setMessage(fields.message);
  }
  return res;
}

/** Why the collector would drop this span message, or null. */
function spanRejection(json) {
  const body = json.span || json.spanChunk;
  if (!body) return 'PSpanMessage has neither span nor spanChunk';
  if (body.version !== 1) return `unsupported version:${body.version}`;
  if (!body.transactionId) return 'transactionId is required';
  return null;
}

// ---------------------------------------------------------------- collector

class Collector {
  constructor(opts) {
    this.opts = opts;
    this.root = schema.loadRoot(opts.protoDir);
    this.methods = buildMethods(this.root);
    this.store = new Store(opts);
    this.servers = [];
    this.http = null;
    this.callIds = 0;
  }

  enabled(method) {
    return !(method.minVersion === '3.1' && this.opts.version === '3.0');
  }

  /**
   * Decodes request bytes. The agent's generated class is the wire check
   * (as a real Pinpoint peer reads them); our schema gives the JSON.
   * Returns { json } or { error }.
   */
  decode(method, bytes) {
    try {
      // structural check first: google-protobuf's reader can hang on malformed bytes
      checkWire(method.requestType, bytes);
      if (this.opts.blackhole) {
        // load tests: decode only what the span rules need, skip the JSON
        const needed = method.service === 'Span';
        return { json: needed ? method.requestType.decode(bytes) : {} };
      }
      if (method.agentDef) method.agentDef.requestType.deserializeBinary(new Uint8Array(bytes));
      return { json: schema.decodeToJson(method.requestType, bytes) };
    } catch (e) {
      this.store.counter(method.service, method.name).decodeErrors += 1;
      return { error: `Invalid protobuf byte sequence: ${e.message}` };
    }
  }

  entry(method, headers, callId, message, extra = {}) {
    return {
      ts: Date.now(),
      service: method.service,
      method: method.name,
      callId,
      headers,
      type: `v1.${method.requestType.name}`,
      ...extra,
      message,
    };
  }

  /** Validates headers; on failure records the rejection and returns the status. */
  admit(method, call) {
    const callId = ++this.callIds;
    const c = this.store.counter(method.service, method.name);
    c.calls += 1;
    const headers = headersOf(call);
    const problem = validateHeaders(headers, this.opts);
    if (!problem) return { headers, callId };
    this.store.addRejection({
      ts: Date.now(), service: method.service, method: method.name, callId, headers,
      code: 'INVALID_ARGUMENT', message: problem,
    });
    return { status: { code: grpc.status.INVALID_ARGUMENT, details: problem } };
  }

  handler(method) {
    const guard = (fn) => (...args) => {
      try {
        fn(...args);
      } catch (e) {
        process.stderr.write(`collector: ${method.service}/${method.name} handler error: ${e.stack || e}\n`);
        const last = args[args.length - 1];
        try {
          if (typeof last === 'function') last({ code: grpc.status.INTERNAL, details: String(e.message || e) });
          else args[0].emit('error', { code: grpc.status.INTERNAL, details: String(e.message || e) });
        } catch { /* the call is gone */ }
      }
    };
    if (method.kind === 'unary') return guard((call, callback) => this.unary(method, call, callback));
    if (method.kind === 'clientStream') return guard((call, callback) => this.clientStream(method, call, callback));
    return guard((call) => this.pingSession(method, call));
  }

  unary(method, call, callback) {
    const adm = this.admit(method, call);
    if (adm.status) return callback(adm.status);
    const dec = this.decode(method, call.request);
    if (dec.error) return callback({ code: grpc.status.INTERNAL, details: dec.error });
    if (method.name === 'SendSpanBatch') return callback(null, this.spanBatch(method, adm, dec.json));
    this.store.addMessage(this.entry(method, adm.headers, adm.callId, dec.json));
    return callback(null, agentResponse(method, { success: true }));
  }

  spanBatch(method, adm, batch) {
    const reasons = new Map();
    let rejected = 0;
    (batch.span || []).forEach((msg, index) => {
      const why = spanRejection(msg);
      if (why) {
        rejected += 1;
        reasons.set(why, (reasons.get(why) || 0) + 1);
        this.store.counter(method.service, method.name).rejectedSpans += 1;
      }
      this.store.addMessage(this.entry(method, adm.headers, adm.callId, msg,
        { type: 'v1.PSpanMessage', batchIndex: index, accepted: !why, ...(why ? { rejectReason: why } : {}) }));
    });
    if (!rejected) return {};
    const text = [...reasons.entries()].map(([r, n]) => `${n} x ${r}`).join('; ');
    return { partial_success: { rejected_spans: String(rejected), errorId: '0', error_message: `rejected ${rejected} span(s): ${text}` } };
  }

  clientStream(method, call, callback) {
    const adm = this.admit(method, call);
    if (adm.status) return callback(adm.status);
    let done = false;
    const finish = (err, res) => {
      if (done) return;
      done = true;
      callback(err, res);
    };
    let index = 0;
    call.on('data', (bytes) => {
      if (done) return;
      try {
        const dec = this.decode(method, bytes);
        if (dec.error) {
          finish({ code: grpc.status.INTERNAL, details: dec.error });
          return;
        }
        const extra = { streamIndex: index++ };
        if (method.service === 'Span') {
          const why = spanRejection(dec.json);
          extra.accepted = !why;
          if (why) {
            // the collector drops it silently; the stream stays open
            extra.rejectReason = why;
            this.store.counter(method.service, method.name).rejectedSpans += 1;
          }
        }
        this.store.addMessage(this.entry(method, adm.headers, adm.callId, dec.json, extra));
      } catch (e) {
        finish({ code: grpc.status.INTERNAL, details: String(e.message || e) });
      }
    });
    call.on('end', () => finish(null, agentResponse(method, {})));
    call.on('error', () => { done = true; });
    call.on('cancelled', () => { done = true; });
    return undefined;
  }

  pingSession(method, call) {
    const adm = this.admit(method, call);
    if (adm.status) {
      call.emit('error', adm.status);
      return;
    }
    const socketidPresent = adm.headers.socketid !== null && /^[+-]?\d+$/.test(adm.headers.socketid);
    let index = 0;
    let open = true;
    call.on('data', (bytes) => {
      if (!open) return;
      const dec = this.decode(method, bytes);
      if (dec.error) {
        open = false;
        call.emit('error', { code: grpc.status.INTERNAL, details: dec.error });
        return;
      }
      this.store.addMessage(this.entry(method, adm.headers, adm.callId, dec.json,
        { streamIndex: index++, socketidPresent }));
      call.write(agentResponse(method, {}) || {});
    });
    call.on('end', () => {
      if (open) {
        open = false;
        call.end();
      }
    });
    call.on('error', () => { open = false; });
    call.on('cancelled', () => { open = false; });
  }

  /** grpc-js service object for one of Agent / Metadata / Span / Stat. */
  serviceFor(serviceName) {
    const def = {};
    const impl = {};
    for (const method of this.methods.filter((x) => x.service === serviceName && this.enabled(x))) {
      const [name, d] = grpcDefinition(this.root, method);
      def[name] = d;
      impl[name] = this.handler(method);
    }
    return [def, impl];
  }

  async start() {
    const o = this.opts;
    // group services per port: --port puts all on one server
    const plan = [
      ['agent', ['Agent', 'Metadata'], o.agentPort ?? o.port ?? 9991],
      ['stat', ['Stat'], o.statPort ?? o.port ?? 9992],
      ['span', ['Span'], o.spanPort ?? o.port ?? 9993],
    ];
    const groups = new Map();
    plan.forEach(([role, services, port]) => {
      const explicit = { agent: o.agentPort, stat: o.statPort, span: o.spanPort }[role];
      const key = explicit === undefined && o.port !== undefined ? 'shared' : port === 0 ? `any-${role}` : `port-${port}`;
      if (!groups.has(key)) groups.set(key, { port, roles: [], services: [] });
      const g = groups.get(key);
      g.roles.push(role);
      g.services.push(...services);
    });
    const ports = {};
    for (const g of groups.values()) {
      const server = new grpc.Server({
        'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
        'grpc.max_connection_age_ms': CONNECTION_AGE_MS,
      });
      for (const s of g.services) {
        const [def, impl] = this.serviceFor(s);
        server.addService(def, impl);
      }
      const bound = await new Promise((resolve, reject) => {
        server.bindAsync(`${o.host}:${g.port}`, grpc.ServerCredentials.createInsecure(),
          (err, port) => (err ? reject(err) : resolve(port)));
      });
      this.servers.push(server);
      for (const r of g.roles) ports[r] = bound;
    }
    this.http = http.createServer((req, res) => this.control(req, res));
    ports.control = await new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(o.controlPort, o.host, () => resolve(this.http.address().port));
    });
    this.ports = { agent: ports.agent, stat: ports.stat, span: ports.span, control: ports.control };
    return this.ports;
  }

  control(req, res) {
    const send = (status, body) => {
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' });
      res.end(text);
    };
    try {
      const url = new URL(req.url, 'http://control');
      const route = `${req.method} ${url.pathname}`;
      const filtered = () => {
        const q = url.searchParams;
        return this.store.messages.filter((m) =>
          (!q.has('service') || m.service === q.get('service'))
          && (!q.has('method') || m.method === q.get('method'))
          && (!q.has('agentid') || m.headers.agentid === q.get('agentid'))
          && (!q.has('applicationname') || m.headers.applicationname === q.get('applicationname')));
      };
      switch (route) {
        case 'GET /messages': return send(200, filtered());
        case 'GET /rejections': return send(200, this.store.rejections);
        case 'GET /stats': return send(200, this.store.snapshotStats());
        case 'GET /calltree': {
          const report = calltree.analyze(this.store.messages);
          return send(200, url.searchParams.get('format') === 'text' ? `${calltree.render(report)}\n` : report);
        }
        case 'GET /healthz': return send(200, 'ok');
        case 'POST /reset':
          this.store.reset();
          req.resume();
          return send(200, { reset: true });
        default:
          req.resume();
          return send(404, { error: `no route ${route}`, routes: ['GET /messages', 'GET /rejections', 'GET /stats', 'GET /calltree', 'GET /healthz', 'POST /reset'] });
      }
    } catch (e) {
      return send(500, { error: String(e.message || e) });
    }
  }

  async close() {
    await Promise.all(this.servers.map((s) => new Promise((resolve) => {
      const timer = setTimeout(() => { s.forceShutdown(); resolve(); }, 1000);
      s.tryShutdown(() => { clearTimeout(timer); resolve(); });
    })));
    if (this.http) {
      this.http.closeAllConnections?.();
      await new Promise((resolve) => this.http.close(() => resolve()));
    }
    if (this.store.recordStream) await new Promise((resolve) => this.store.recordStream.end(resolve));
  }
}

/** Starts a collector in this process (for tests). Resolves to the Collector. */
async function startCollector(options = {}) {
  const opts = { ...parseArgs([]), ...options };
  const c = new Collector(opts);
  await c.start();
  return c;
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${e.message}\n${USAGE}`);
    process.exit(64);
  }
  if (opts.help) {
    process.stdout.write(USAGE);
    return;
  }
  process.on('uncaughtException', (e) => process.stderr.write(`collector: uncaught: ${e.stack || e}\n`));
  process.on('unhandledRejection', (e) => process.stderr.write(`collector: unhandled: ${e && e.stack ? e.stack : e}\n`));
  const collector = new Collector(opts);
  let ports;
  try {
    ports = await collector.start();
  } catch (e) {
    process.stderr.write(`collector: cannot start: ${e.message}\n`);
    process.exit(70);
  }
  process.stdout.write(`${JSON.stringify(ports)}\n`);
  const stop = () => collector.close().finally(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (opts.exitWithStdin) {
    process.stdin.on('end', stop);
    process.stdin.on('close', stop);
    process.stdin.resume();
  }
}

if (require.main === module) main();

module.exports = { startCollector, Collector, parseArgs, validateHeaders, spanRejection };
