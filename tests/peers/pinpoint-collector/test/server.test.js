'use strict';
// The stand-in collector, driven by Pinpoint's own generated clients
// (pinpoint-node-agent's Service_grpc_pb.js) and, for the methods newer than
// that code, by clients built from our .proto files.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const grpc = require('@grpc/grpc-js');

const schema = require('../lib/schema');
const agent = require('../lib/agent-pb');
const { startCollector } = require('../server');

const SERVER_JS = path.join(__dirname, '..', 'server.js');
const root = schema.loadRoot();
const types = schema.v1Types(root);
const { services } = agent;
const creds = grpc.credentials.createInsecure();

const HEADERS = { agentid: 'bridge-1', applicationname: 'checkout', starttime: '1700000000000', servicetype: '1220' };

function md(headers = HEADERS) {
  const m = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) m.set(k, v);
  return m;
}

async function http(port, method, p) {
  const res = await fetch(`http://127.0.0.1:${port}${p}`, { method });
  const text = await res.text();
  try { return { status: res.status, body: JSON.parse(text) }; } catch { return { status: res.status, body: text }; }
}

function unary(client, name, msg, headers) {
  return new Promise((resolve) => {
    client[name](msg, md(headers), (err, res) => resolve({ err, res }));
  });
}

/** A client for one of our methods (those missing from the agent code). */
function ourClient(port, service, methodName) {
  const svc = root.lookupService(`v1.${service}`);
  const m = svc.methods[methodName];
  const req = m.resolvedRequestType;
  const res = m.resolvedResponseType;
  const Ctor = grpc.makeGenericClientConstructor({
    call: {
      path: `/v1.${service}/${methodName}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: (obj) => schema.encodeFromObject(req, obj),
      requestDeserialize: (b) => schema.decodeToJson(req, b),
      responseSerialize: (obj) => schema.encodeFromObject(res, obj),
      responseDeserialize: (b) => schema.decodeToJson(res, b),
    },
  });
  return new Ctor(`127.0.0.1:${port}`, creds);
}

/** Raw bytes client, to send garbage. */
function rawClient(port, p, requestStream) {
  const Ctor = grpc.makeGenericClientConstructor({
    call: {
      path: p, requestStream, responseStream: false,
      requestSerialize: (b) => b, requestDeserialize: (b) => b,
      responseSerialize: (b) => b, responseDeserialize: (b) => b,
    },
  });
  return new Ctor(`127.0.0.1:${port}`, creds);
}

function spanMessage(obj) {
  return agent.toAgent(types.get('PSpanMessage'), obj);
}

const BIG_SPAN_ID = '-8914616934935285348';

const validSpan = {
  span: {
    version: 1,
    transactionId: { agentId: 'bridge-1', agentStartTime: '1700000000000', sequence: '7' },
    spanId: BIG_SPAN_ID,
    parentSpanId: '-1',
    startTime: '1700000000100',
    elapsed: 30,
    serviceType: 1220,
    applicationServiceType: 1220,
    annotation: [{ key: 12, value: { stringValue: 'GET /cart' } }],
    spanEvent: [{ sequence: 0, depth: 1, startElapsed: 1, endElapsed: 5, serviceType: 9310, apiId: 0,
      annotation: [{ key: 12, value: { stringValue: 'http.client' } }],
      nextEvent: { messageEvent: { nextSpanId: '-2', endPoint: 'pay:80', destinationId: 'pay:80' } } }],
  },
};

test('CLI prints one JSON line with the ports, --port puts all services on one port', async () => {
  const child = spawn(process.execPath, [SERVER_JS, '--port', '0', '--control-port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const line = await new Promise((resolve, reject) => {
      let buf = '';
      child.stdout.on('data', (d) => {
        buf += d;
        if (buf.includes('\n')) resolve(buf.slice(0, buf.indexOf('\n')));
      });
      child.on('exit', (code) => reject(new Error(`exited ${code}`)));
    });
    const ports = JSON.parse(line);
    assert.deepEqual(Object.keys(ports), ['agent', 'stat', 'span', 'control']);
    for (const v of Object.values(ports)) assert.ok(Number.isInteger(v) && v > 0);
    assert.equal(ports.agent, ports.stat);
    assert.equal(ports.agent, ports.span);
    assert.equal((await http(ports.control, 'GET', '/healthz')).body, 'ok');
    const client = new services.AgentClient(`127.0.0.1:${ports.agent}`, creds);
    const { err, res } = await unary(client, 'requestAgentInfo', new (agent.classes.get('PAgentInfo'))());
    assert.ifError(err);
    assert.equal(res.getSuccess(), true);
    client.close();
  } finally {
    child.kill('SIGTERM');
  }
});

test('CLI rejects unknown options with exit code 64', async () => {
  const child = spawn(process.execPath, [SERVER_JS, '--nope'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const code = await new Promise((resolve) => child.on('exit', resolve));
  assert.equal(code, 64);
});

test('separate ports: Span is not served on the agent port', async (t) => {
  const c = await startCollector({ agentPort: 0, statPort: 0, spanPort: 0 });
  t.after(() => c.close());
  const { agent: a, stat: s, span: sp } = c.ports;
  assert.equal(new Set([a, s, sp]).size, 3);
  const wrong = new services.SpanClient(`127.0.0.1:${a}`, creds);
  const err = await new Promise((resolve) => {
    const call = wrong.sendSpan(md(), (e) => resolve(e));
    call.end();
  });
  assert.equal(err.code, grpc.status.UNIMPLEMENTED);
  wrong.close();
});

test('Agent: RequestAgentInfo is recorded with headers and proto field names', async (t) => {
  const c = await startCollector({ port: 0 });
  t.after(() => c.close());
  const client = new services.AgentClient(`127.0.0.1:${c.ports.agent}`, creds);
  t.after(() => client.close());
  const info = agent.toAgent(types.get('PAgentInfo'), {
    hostname: 'host-a', ip: '10.0.0.1', ports: '8080', serviceType: 1220, pid: 42, agentVersion: '0.1.0',
    container: true, serverMetaData: { serverInfo: 'otel-pinpoint-bridge', vmArg: ['--x'] },
  });
  const { err, res } = await unary(client, 'requestAgentInfo', info, { ...HEADERS, agentname: 'bridge.one', 'protocol.version': '100' });
  assert.ifError(err);
  assert.equal(res.getSuccess(), true);
  const { body } = await http(c.ports.control, 'GET', '/messages?service=Agent');
  assert.equal(body.length, 1);
  const e = body[0];
  assert.equal(e.method, 'RequestAgentInfo');
  assert.equal(typeof e.ts, 'number');
  assert.deepEqual(
    { ...e.headers },
    { ...HEADERS, agentname: 'bridge.one', socketid: null, 'protocol.version': '100' });
  assert.equal(e.message.hostname, 'host-a');
  assert.equal(e.message.serviceType, 1220);
  assert.equal(e.message.container, true);
  assert.deepEqual(e.message.serverMetaData.vmArg, ['--x']);
  assert.equal(e.message.endTimestamp, '0', 'int64 as decimal string');
});

test('headers are validated like the collector: INVALID_ARGUMENT and a recorded rejection', async (t) => {
  const c = await startCollector({ port: 0 });
  t.after(() => c.close());
  const client = new services.MetadataClient(`127.0.0.1:${c.ports.agent}`, creds);
  t.after(() => client.close());
  const msg = new (agent.classes.get('PApiMetaData'))();
  const cases = [
    [{ ...HEADERS, agentid: undefined }, 'agentid header is missing'],
    [{ ...HEADERS, agentid: 'bad id' }, 'Invalid agentid'],
    [{ ...HEADERS, agentid: 'a'.repeat(25) }, 'Invalid agentid'],
    [{ ...HEADERS, applicationname: undefined }, 'applicationname header is missing'],
    [{ ...HEADERS, applicationname: 'a'.repeat(25) }, 'Invalid applicationname'],
    [{ ...HEADERS, applicationname: 'shop/cart' }, 'Invalid applicationname'],
    [{ ...HEADERS, starttime: undefined }, 'starttime header is missing'],
    [{ ...HEADERS, starttime: '17e11' }, 'unsupported format'],
    [{ ...HEADERS, starttime: '99999999999999999999' }, 'unsupported format'],
    [{ ...HEADERS, agentname: 'has space' }, 'Invalid agentname'],
  ];
  for (const [headers, details] of cases) {
    const { err } = await unary(client, 'requestApiMetaData', msg, headers);
    assert.ok(err, details);
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT, details);
    assert.equal(err.details, details);
  }
  const ok = await unary(client, 'requestApiMetaData', msg, { ...HEADERS, agentid: 'a'.repeat(24), applicationname: 'A-b_c.9' });
  assert.ifError(ok.err);
  const rej = (await http(c.ports.control, 'GET', '/rejections')).body;
  assert.equal(rej.length, cases.length);
  assert.deepEqual(rej.map((r) => r.message), cases.map((x) => x[1]));
  assert.equal(rej[0].code, 'INVALID_ARGUMENT');
  assert.equal(rej[0].headers.agentid, null);
  const stats = (await http(c.ports.control, 'GET', '/stats')).body;
  assert.equal(stats.methods['Metadata/RequestApiMetaData'].headerRejections, cases.length);
  assert.equal(stats.methods['Metadata/RequestApiMetaData'].messages, 1);
  assert.equal((await http(c.ports.control, 'GET', '/messages')).body.length, 1);
});

test('--max-app-name-length raises the applicationname limit', async (t) => {
  const c = await startCollector({ port: 0, maxAppNameLength: 254 });
  t.after(() => c.close());
  const client = new services.AgentClient(`127.0.0.1:${c.ports.agent}`, creds);
  t.after(() => client.close());
  const { err } = await unary(client, 'requestAgentInfo', new (agent.classes.get('PAgentInfo'))(),
    { ...HEADERS, applicationname: 'x'.repeat(200) });
  assert.ifError(err);
});

async function pingRound(port, headers, n) {
  const client = new services.AgentClient(`127.0.0.1:${port}`, creds);
  const call = client.pingSession(md(headers));
  const echoes = [];
  const done = new Promise((resolve) => {
    call.on('data', (d) => echoes.push(d));
    call.on('error', (e) => resolve(e));
    call.on('end', () => resolve(null));
  });
  const PPing = agent.classes.get('PPing');
  for (let i = 0; i < n; i++) call.write(new PPing());
  while (echoes.length < n) await new Promise((r) => setTimeout(r, 10));
  call.end();
  const err = await done;
  client.close();
  return { echoes, err };
}

test('Agent: PingSession echoes every ping and records whether socketid was sent', async (t) => {
  const c = await startCollector({ port: 0 });
  t.after(() => c.close());
  const a = await pingRound(c.ports.agent, { ...HEADERS, socketid: '3' }, 3);
  assert.equal(a.echoes.length, 3);
  assert.equal(a.err, null);
  const b = await pingRound(c.ports.agent, HEADERS, 1);
  assert.equal(b.echoes.length, 1);
  const pings = (await http(c.ports.control, 'GET', '/messages?method=PingSession')).body;
  assert.deepEqual(pings.map((p) => p.socketidPresent), [true, true, true, false]);
  assert.equal(pings[0].headers.socketid, '3');
  assert.deepEqual(pings[0].message, {});
});

test('Agent: PingSession with bad headers ends with INVALID_ARGUMENT', async (t) => {
  const c = await startCollector({ port: 0 });
  t.after(() => c.close());
  const client = new services.AgentClient(`127.0.0.1:${c.ports.agent}`, creds);
  t.after(() => client.close());
  const call = client.pingSession(md({ ...HEADERS, starttime: 'x' }));
  const err = await new Promise((resolve) => {
    call.on('error', resolve);
    call.on('data', () => {});
    call.write(new (agent.classes.get('PPing'))());
  });
  assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
  assert.equal(err.details, 'unsupported format');
});

test('Metadata: all five methods answer PResult success and are recorded', async (t) => {
  const c = await startCollector({ port: 0 });
  t.after(() => c.close());
  const client = new services.MetadataClient(`127.0.0.1:${c.ports.agent}`, creds);
  t.after(() => client.close());
  const api = agent.toAgent(types.get('PApiMetaData'), { apiId: 7, apiInfo: 'GET /cart', type: 100 });
  const str = agent.toAgent(types.get('PStringMetaData'), { stringId: 3, stringValue: 'java.io.IOException' });
  const sql = agent.toAgent(types.get('PSqlMetaData'), { sqlId: 5, sql: 'select 1' });
  for (const [name, msg] of [['requestApiMetaData', api], ['requestStringMetaData', str], ['requestSqlMetaData', sql]]) {
    const { err, res } = await unary(client, name, msg);
    assert.ifError(err);
    assert.equal(res.getSuccess(), true, name);
  }
  for (const [name, msg] of [
    ['RequestSqlUidMetaData', { sqlUid: Buffer.from([1, 2, 255]).toString('base64'), sql: 'select 2' }],
    ['RequestExceptionMetaData', { spanId: BIG_SPAN_ID, uriTemplate: '/cart', transactionId: { agentId: 'a', agentStartTime: '1', sequence: '2' },
      exceptions: [{ exceptionClassName: 'E', exceptionMessage: 'boom', exceptionId: '-5', stackTraceElement: [{ className: 'C', lineNumber: 3 }] }] }],
  ]) {
    const cl = ourClient(c.ports.agent, 'Metadata', name);
    const res = await new Promise((resolve, reject) => cl.call(msg, md(), (e, r) => (e ? reject(e) : resolve(r))));
    assert.equal(res.success, true, name);
    cl.close();
  }
  const recorded = (await http(c.ports.control, 'GET', '/messages?service=Metadata')).body;
  assert.deepEqual(recorded.map((r) => r.method), ['RequestApiMetaData', 'RequestStringMetaData', 'RequestSqlMetaData',
    'RequestSqlUidMetaData', 'RequestExceptionMetaData']);
  assert.equal(recorded[0].message.apiInfo, 'GET /cart');
  assert.equal(recorded[3].message.sqlUid, Buffer.from([1, 2, 255]).toString('base64'));
  assert.equal(recorded[4].message.spanId, BIG_SPAN_ID);
  assert.equal(recorded[4].message.exceptions[0].exceptionId, '-5');
});

function sendSpans(port, messages, headers = HEADERS) {
  const client = new services.SpanClient(`127.0.0.1:${port}`, creds);
  return new Promise((resolve) => {
    const call = client.sendSpan(md(headers), (err, res) => {
      client.close();
      resolve({ err, res });
    });
    for (const m of messages) call.write(m);
    call.end();
  });
}

test('Span: SendSpan records spans and chunks exactly; bad spans are dropped, the stream stays open', async (t) => {
  const c = await startCollector({ port: 0 });
  t.after(() => c.close());
  const chunk = { spanChunk: { version: 1, transactionId: validSpan.span.transactionId, spanId: BIG_SPAN_ID,
    keyTime: '1700000000200', applicationServiceType: 1220, spanEvent: [{ sequence: 1, depth: 1, serviceType: 5000 }] } };
  const badVersion = { span: { ...validSpan.span, version: 2, spanId: '5' } };
  const noTx = { span: { ...validSpan.span, transactionId: null, spanId: '6' } };
  const { err, res } = await sendSpans(c.ports.span, [validSpan, badVersion, noTx, chunk].map(spanMessage));
  assert.ifError(err);
  assert.ok(res); // google.protobuf.Empty
  const spans = (await http(c.ports.control, 'GET', '/messages?service=Span')).body;
  assert.equal(spans.length, 4);
  assert.deepEqual(spans.map((s) => s.accepted), [true, false, false, true]);
  assert.equal(spans[1].rejectReason, 'unsupported version:2');
  assert.equal(spans[2].rejectReason, 'transactionId is required');
  assert.deepEqual(spans.map((s) => s.streamIndex), [0, 1, 2, 3]);
  assert.equal(new Set(spans.map((s) => s.callId)).size, 1);
  const s0 = spans[0].message;
  assert.equal(s0.field, 'span');
  assert.equal(s0.span.spanId, BIG_SPAN_ID);
  assert.equal(s0.span.parentSpanId, '-1');
  assert.equal(s0.span.spanEvent[0].nextEvent.messageEvent.nextSpanId, '-2');
  assert.equal(s0.span.spanEvent[0].serviceType, 9310);
  assert.equal(spans[3].message.field, 'spanChunk');
  assert.equal(spans[3].message.spanChunk.keyTime, '1700000000200');
  const stats = (await http(c.ports.control, 'GET', '/stats')).body;
  assert.deepEqual(stats.methods['Span/SendSpan'], { calls: 1, messages: 4, headerRejections: 0, rejectedSpans: 2, decodeErrors: 0 });
});

test('Span: SendSpanBatch (3.1) reports rejected spans in partial_success', async (t) => {
  const c = await startCollector({ port: 0, version: '3.1' });
  t.after(() => c.close());
  const client = ourClient(c.ports.span, 'Span', 'SendSpanBatch');
  t.after(() => client.close());
  const call = (batch) => new Promise((resolve) => client.call(batch, md(), (err, res) => resolve({ err, res })));
  const all = await call({ span: [validSpan] });
  assert.ifError(all.err);
  assert.equal(all.res.partial_success, null);
  const some = await call({ span: [validSpan, { span: { ...validSpan.span, version: 0 } }, { spanChunk: { version: 1 } }] });
  assert.ifError(some.err);
  assert.equal(some.res.partial_success.rejected_spans, '2');
  assert.match(some.res.partial_success.error_message, /unsupported version:0/);
  assert.match(some.res.partial_success.error_message, /transactionId is required/);
  const recorded = (await http(c.ports.control, 'GET', '/messages?method=SendSpanBatch')).body;
  assert.equal(recorded.length, 4);
  assert.deepEqual(recorded.map((r) => r.batchIndex), [0, 0, 1, 2]);
  assert.deepEqual(recorded.map((r) => r.accepted), [true, true, false, false]);
  assert.equal(recorded[0].type, 'v1.PSpanMessage');
  assert.equal(recorded[0].message.span.spanId, BIG_SPAN_ID);
});

test('Span: --version 3.0 answers UNIMPLEMENTED to SendSpanBatch, SendSpan still works', async (t) => {
  const c = await startCollector({ port: 0, version: '3.0' });
  t.after(() => c.close());
  const client = ourClient(c.ports.span, 'Span', 'SendSpanBatch');
  t.after(() => client.close());
  const err = await new Promise((resolve) => client.call({ span: [validSpan] }, md(), (e) => resolve(e)));
  assert.equal(err.code, grpc.status.UNIMPLEMENTED);
  const { err: e2 } = await sendSpans(c.ports.span, [spanMessage(validSpan)]);
  assert.ifError(e2);
  assert.equal((await http(c.ports.control, 'GET', '/stats')).body.version, '3.0');
});

test('Stat: SendAgentStat records every stat message', async (t) => {
  const c = await startCollector({ port: 0 });
  t.after(() => c.close());
  const client = new services.StatClient(`127.0.0.1:${c.ports.stat}`, creds);
  t.after(() => client.close());
  const T = types.get('PStatMessage');
  const msgs = [
    { agentStat: { timestamp: '1700000000000', collectInterval: '5000', cpuLoad: { jvmCpuLoad: 0.25, systemCpuLoad: 0.5 },
      transaction: { sampledNewCount: '3' }, activeTrace: { histogram: { version: 1, histogramSchemaType: 2, activeTraceCount: [1, 0, 0, 2] } } } },
    { agentStatBatch: { agentStat: [{ timestamp: '1' }, { timestamp: '2' }] } },
  ];
  const err = await new Promise((resolve) => {
    const call = client.sendAgentStat(md(), (e) => resolve(e));
    for (const m of msgs) call.write(agent.toAgent(T, m));
    call.end();
  });
  assert.ifError(err);
  const recorded = (await http(c.ports.control, 'GET', '/messages?service=Stat')).body;
  assert.equal(recorded.length, 2);
  assert.equal(recorded[0].message.agentStat.cpuLoad.systemCpuLoad, 0.5);
  assert.deepEqual(recorded[0].message.agentStat.activeTrace.histogram.activeTraceCount, [1, 0, 0, 2]);
  assert.equal(recorded[1].message.field, 'agentStatBatch');
});

test('bad input never crashes it: garbage bytes get INTERNAL, the server keeps serving', async (t) => {
  const c = await startCollector({ port: 0 });
  t.after(() => c.close());
  const garbage = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]);
  const u = rawClient(c.ports.agent, '/v1.Agent/RequestAgentInfo', false);
  const e1 = await new Promise((resolve) => u.call(garbage, md(), (e) => resolve(e)));
  assert.equal(e1.code, grpc.status.INTERNAL);
  u.close();
  const s = rawClient(c.ports.span, '/v1.Span/SendSpan', true);
  const e2 = await new Promise((resolve) => {
    const call = s.call(md(), (e) => resolve(e));
    call.write(garbage);
    call.end();
  });
  assert.equal(e2.code, grpc.status.INTERNAL);
  s.close();
  const b = rawClient(c.ports.span, '/v1.Span/SendSpanBatch', false);
  const e3 = await new Promise((resolve) => b.call(Buffer.from([0x0a, 0x05, 0x01]), md(), (e) => resolve(e)));
  assert.equal(e3.code, grpc.status.INTERNAL);
  b.close();
  // a bad control request is answered too
  assert.equal((await http(c.ports.control, 'GET', '/nope')).status, 404);
  assert.equal((await http(c.ports.control, 'GET', '/messages?service=%E0%A4%A')).status, 200);
  const { err } = await sendSpans(c.ports.span, [spanMessage(validSpan)]);
  assert.ifError(err);
  const stats = (await http(c.ports.control, 'GET', '/stats')).body;
  assert.equal(stats.methods['Agent/RequestAgentInfo'].decodeErrors, 1);
  assert.equal(stats.methods['Span/SendSpan'].decodeErrors, 1);
  assert.equal(stats.methods['Span/SendSpanBatch'].decodeErrors, 1);
});

test('control API: /stats, POST /reset, /calltree; --record appends JSON lines', async (t) => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ppcol-')), 'rec.jsonl');
  const c = await startCollector({ port: 0, record: file });
  t.after(() => c.close());
  await sendSpans(c.ports.span, [spanMessage(validSpan)]);
  await sendSpans(c.ports.span, [spanMessage(validSpan)], { ...HEADERS, agentid: '' });
  const tree = (await http(c.ports.control, 'GET', '/calltree')).body;
  assert.equal(tree.summary.transactions, 1);
  assert.deepEqual(tree.transactions[0].roots, [BIG_SPAN_ID]);
  const text = (await http(c.ports.control, 'GET', '/calltree?format=text')).body;
  assert.match(text, /^transaction bridge-1\^1700000000000\^7 \[COMPLETE\]/);
  assert.equal((await http(c.ports.control, 'POST', '/reset')).status, 200);
  assert.deepEqual((await http(c.ports.control, 'GET', '/messages')).body, []);
  assert.deepEqual((await http(c.ports.control, 'GET', '/rejections')).body, []);
  assert.equal((await http(c.ports.control, 'GET', '/stats')).body.methods['Span/SendSpan'].messages, 0);
  await c.close();
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.kind), ['message', 'header-rejection']);
  assert.equal(lines[0].message.span.spanId, BIG_SPAN_ID);
  assert.equal(lines[1].message, 'Invalid agentid');
});

test('--blackhole counts everything and keeps nothing', async (t) => {
  const c = await startCollector({ port: 0, blackhole: true });
  t.after(() => c.close());
  const bad = { span: { ...validSpan.span, version: 3 } };
  const { err } = await sendSpans(c.ports.span, [validSpan, validSpan, bad].map(spanMessage));
  assert.ifError(err);
  const batch = ourClient(c.ports.span, 'Span', 'SendSpanBatch');
  const res = await new Promise((resolve, reject) => batch.call({ span: [validSpan, bad] }, md(), (e, r) => (e ? reject(e) : resolve(r))));
  batch.close();
  assert.equal(res.partial_success.rejected_spans, '1');
  const stats = (await http(c.ports.control, 'GET', '/stats')).body;
  assert.equal(stats.blackhole, true);
  assert.equal(stats.recorded, 0);
  assert.equal(stats.methods['Span/SendSpan'].messages, 3);
  assert.equal(stats.methods['Span/SendSpan'].rejectedSpans, 1);
  assert.equal(stats.methods['Span/SendSpanBatch'].messages, 2);
  assert.deepEqual((await http(c.ports.control, 'GET', '/messages')).body, []);
});
