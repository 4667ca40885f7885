'use strict';
// The call-tree checker on hand-built recordings.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const { analyze, render } = require('../calltree');

const START = '1700000000000';
const TX = { agentId: 'front-1', agentStartTime: START, sequence: '42' };

const AGENTS = {
  frontend: { agentid: 'front-1', applicationname: 'frontend', starttime: START, servicetype: '1220' },
  backend: { agentid: 'back-1', applicationname: 'backend', starttime: '1700000000500', servicetype: '1220' },
  inventory: { agentid: 'inv-1', applicationname: 'inventory', starttime: '1700000000900', servicetype: '1220' },
};

function rec(app, message, extra = {}) {
  return { ts: 0, service: 'Span', method: 'SendSpan', headers: { ...AGENTS[app] }, message, accepted: true, ...extra };
}
function meta(app, method, message) {
  return { ts: 0, service: 'Metadata', method, headers: { ...AGENTS[app] }, message };
}
function span(fields) {
  return { span: { version: 1, transactionId: TX, startTime: START, parentSpanId: '-1', serviceType: 1220, applicationServiceType: 1220, ...fields } };
}
function chunk(fields) {
  return { spanChunk: { version: 1, transactionId: TX, applicationServiceType: 1220, keyTime: START, ...fields } };
}
function ev(sequence, depth, fields = {}) {
  return { sequence, depth, startElapsed: 1, endElapsed: 1, serviceType: 5000, apiId: 0, ...fields };
}
function call(sequence, depth, serviceType, nextSpanId, destinationId, fields = {}) {
  return ev(sequence, depth, { serviceType, nextEvent: { messageEvent: { nextSpanId, endPoint: destinationId, destinationId } }, ...fields });
}
const API = (name) => [{ key: 12, value: { stringValue: name } }];

/** frontend -> backend (HTTP) -> inventory (gRPC) + backend -> MySQL. */
function threeServices() {
  return [
    meta('frontend', 'RequestApiMetaData', { apiId: 10, apiInfo: 'FrontController.handle()' }),
    meta('backend', 'RequestApiMetaData', { apiId: 20, apiInfo: 'CartService.load()' }),
    meta('backend', 'RequestSqlMetaData', { sqlId: 3, sql: 'select * from cart where id = ?' }),
    rec('frontend', span({
      spanId: '-8914616934935285348', apiId: 10, acceptEvent: { rpc: '/checkout', endPoint: 'front:80' },
      spanEvent: [
        ev(0, 1, { annotation: API('render') }),
        call(1, 2, 9310, '7001', 'backend:8080', { annotation: API('http.client GET') }),
      ],
    })),
    rec('backend', span({
      spanId: '7001', parentSpanId: '-8914616934935285348', apiId: 20,
      acceptEvent: { rpc: '/cart', endPoint: 'backend:8080', parentInfo: { parentApplicationName: 'frontend', parentApplicationType: 1220, acceptorHost: 'backend:8080' } },
      spanEvent: [
        ev(0, 1, { apiId: 20 }),
        // depth 0 on the wire = same depth as the previous event
        ev(1, 0, { serviceType: 2101, annotation: [{ key: 20, value: { intStringStringValue: { intValue: 3 } } }],
          nextEvent: { messageEvent: { nextSpanId: '-1', destinationId: 'cartdb' } } }),
        call(2, 2, 9160, '9001', 'inventory:9090', { annotation: API('grpc.client Inventory/Get') }),
        ev(3, 1, { serviceType: 9203, annotation: API('es.search'), nextEvent: { messageEvent: { nextSpanId: '-1', destinationId: 'es-cluster' } } }),
      ],
    })),
    rec('inventory', span({
      spanId: '9001', parentSpanId: '7001', annotation: API('Inventory/Get'),
      acceptEvent: { rpc: '/Inventory/Get', parentInfo: { parentApplicationName: 'backend', parentApplicationType: 1220, acceptorHost: 'inventory:9090' } },
      spanEvent: [ev(0, 1, { annotation: API('lookup') })],
    })),
  ];
}

/** Depth-first search over report tree nodes. */
function find(nodes, pred) {
  for (const n of nodes) {
    if (pred(n)) return n;
    const hit = find(n.children || [], pred);
    if (hit) return hit;
  }
  return undefined;
}
const spanOf = (r, app) => find(r.transactions[0].tree, (n) => n.type === 'span' && n.application === app);

const edgeList = (r) => r.serverMap.map((e) => `${e.from.application}->${e.to.application}`).sort();

test('a valid 3-service transaction: one root, no UNKNOWN/CORRUPTED, edges, all ids registered', () => {
  const r = analyze(threeServices());
  assert.equal(r.summary.ok, true, JSON.stringify(r.summary));
  assert.equal(r.transactions.length, 1);
  const tx = r.transactions[0];
  assert.equal(tx.transactionId, `front-1^${START}^42`);
  assert.equal(tx.state, 'COMPLETE');
  assert.deepEqual(tx.roots, ['-8914616934935285348']);
  assert.deepEqual(tx.unknown, []);
  assert.deepEqual(tx.corrupted, []);

  const root = tx.tree[0];
  assert.equal(root.type, 'span');
  assert.equal(root.application, 'frontend');
  assert.equal(root.api, 'FrontController.handle()');
  assert.equal(root.children.length, 1);
  const render0 = root.children[0];
  assert.equal(render0.api, 'render');
  const httpCall = render0.children[0];
  assert.equal(httpCall.depth, 2, 'depth 2 hangs under the depth-1 event');
  assert.equal(httpCall.nextSpanId, '7001');
  const backend = httpCall.children[0];
  assert.equal(backend.application, 'backend');
  assert.equal(backend.agentId, 'back-1');
  // wire depth 0 = depth of the previous event (1): the SQL event is a sibling of load()
  assert.deepEqual(backend.children.map((c) => [c.sequence, c.depth]), [[0, 1], [1, 1], [3, 1]]);
  assert.equal(backend.children[0].api, 'CartService.load()');
  const sqlEvent = backend.children[1];
  assert.equal(sqlEvent.serviceType, 2101);
  const grpcCall = sqlEvent.children[0];
  assert.equal(grpcCall.serviceType, 9160);
  assert.equal(grpcCall.children[0].application, 'inventory');
  assert.equal(grpcCall.children[0].api, 'Inventory/Get');

  assert.deepEqual(edgeList(r), ['USER->frontend', 'backend->cartdb', 'backend->inventory', 'frontend->backend']);
  const es9203 = r.serverMap.find((e) => e.to.application === 'es-cluster');
  assert.equal(es9203, undefined, 'ELASTICSEARCH records no statistics');
  const db = r.serverMap.find((e) => e.to.application === 'cartdb');
  assert.equal(db.to.category, 'DATABASE');
  const rpc = r.serverMap.find((e) => e.from.application === 'backend' && e.to.application === 'inventory');
  assert.ok(rpc.count >= 1);
  assert.equal(rpc.to.serviceType, 1220, 'RPC target replaced by the application whose acceptorHost matches');
  assert.deepEqual(r.unregistered, { apiIds: [], stringIds: [], sqlIds: [] });
  assert.match(render(r), /OK$/);
});

test('a sequence gap puts the rest of the span under CORRUPTED', () => {
  const msgs = threeServices();
  msgs[4].message.span.spanEvent = [ev(0, 1), ev(2, 1), ev(3, 2)];
  const r = analyze(msgs);
  const tx = r.transactions[0];
  assert.equal(r.summary.corruptedNodes, 1);
  assert.equal(tx.corrupted[0].application, 'backend');
  assert.match(tx.corrupted[0].reason, /sequence 2 follows 0, expected 1/);
  const backend = spanOf(r, 'backend');
  const corrupted = backend.children.find((c) => c.type === 'CORRUPTED');
  assert.deepEqual(corrupted.children.map((c) => c.sequence), [2, 3]);
  assert.equal(r.summary.ok, false);
});

test('first event rules: sequence must start at 0, depth at 1', () => {
  const a = threeServices();
  a[5].message.span.spanEvent = [ev(1, 1)];
  assert.match(analyze(a).transactions[0].corrupted[0].reason, /first event has sequence 1, expected 0/);
  const b = threeServices();
  b[5].message.span.spanEvent = [ev(0, 2)];
  assert.match(analyze(b).transactions[0].corrupted[0].reason, /first event has depth 2, expected 1/);
  const c = threeServices();
  c[5].message.span.spanEvent = [ev(0, 0)]; // wire 0 on the first event = depth 0
  assert.match(analyze(c).transactions[0].corrupted[0].reason, /first event has depth 0, expected 1/);
});

test('a depth jump (1 -> 3) is CORRUPTED', () => {
  const msgs = threeServices();
  msgs[3].message.span.spanEvent = [ev(0, 1), call(1, 3, 9310, '7001', 'backend:8080')];
  const r = analyze(msgs);
  assert.equal(r.summary.corruptedNodes, 1);
  assert.match(r.transactions[0].corrupted[0].reason, /depth 3 after depth 1, allowed 1\.\.2/);
  // the HTTP call was lost under CORRUPTED but still links its child span
  assert.equal(r.summary.unknownNodes, 0);
});

test('a span whose caller is missing hangs under UNKNOWN and the transaction stays in PROGRESS', () => {
  const msgs = threeServices().filter((m) => m.headers.applicationname !== 'backend');
  const r = analyze(msgs);
  const tx = r.transactions[0];
  assert.equal(tx.state, 'PROGRESS');
  assert.equal(r.summary.unknownNodes, 1);
  assert.deepEqual(tx.unknown.map((u) => [u.application, u.spanId, u.parentSpanId]), [['inventory', '9001', '7001']]);
  const unknown = tx.tree.find((n) => n.type === 'UNKNOWN');
  assert.equal(unknown.label, 'No Agent Data');
  assert.equal(unknown.children[0].application, 'inventory');
  // the frontend's HTTP call now has no resolvable callee: drawn as UNKNOWN
  const e = r.serverMap.find((x) => x.to.application === 'backend:8080');
  assert.equal(e.to.category, 'UNKNOWN');
  assert.equal(e.unresolved, true);
});

test('the link needs both ids: a wrong nextSpanId on the caller event is UNKNOWN', () => {
  const msgs = threeServices();
  msgs[3].message.span.spanEvent[1].nextEvent.messageEvent.nextSpanId = '7002';
  const r = analyze(msgs);
  assert.deepEqual(r.transactions[0].unknown.map((u) => u.application), ['backend']);
});

test('a chunk fills a gap and extends a span (late events, a late outgoing call)', () => {
  const msgs = threeServices();
  const front = msgs[3].message.span;
  const late = front.spanEvent.splice(1, 1)[0]; // the HTTP call (sequence 1) arrives later
  front.spanEvent.push(ev(2, 1, { annotation: API('after') }));
  let r = analyze(msgs);
  assert.equal(r.summary.corruptedNodes, 1, 'without the chunk: sequence 1 missing');
  assert.equal(r.summary.unknownNodes, 1, 'and backend has no caller');
  msgs.push(rec('frontend', chunk({ spanId: front.spanId, spanEvent: [late, ev(3, 1, { annotation: API('flush') })] })));
  r = analyze(msgs);
  assert.equal(r.summary.ok, true, JSON.stringify(r.transactions[0].corrupted));
  const tx = r.transactions[0];
  assert.equal(tx.chunks, 1);
  assert.deepEqual(tx.tree[0].children.map((c) => c.sequence), [0, 2, 3]);
  assert.equal(tx.tree[0].children[0].children[0].sequence, 1, 'the chunk event sorted into place');
  assert.equal(tx.tree[0].children[0].children[0].children[0].application, 'backend');
});

test('an async chunk (localAsyncId) restarts at sequence 0 under the event that started it', () => {
  const msgs = threeServices();
  msgs[5].message.span.spanEvent = [ev(0, 1, { asyncEvent: 5, annotation: API('submit') })];
  msgs.push(rec('inventory', chunk({ spanId: '9001', localAsyncId: { asyncId: 5, sequence: 1 },
    spanEvent: [ev(0, 1, { serviceType: 100, annotation: API('async') }), ev(1, 2, { annotation: API('work') })] })));
  const r = analyze(msgs);
  assert.equal(r.summary.ok, true, JSON.stringify(r.transactions[0]));
  const inv = spanOf(r, 'inventory');
  assert.equal(inv.children[0].asyncEvent, 5);
  const holder = inv.children[0].children[0];
  assert.equal(holder.type, 'async');
  assert.equal(holder.asyncId, 5);
  assert.equal(holder.children[0].api, 'async');
  assert.equal(holder.children[0].children[0].api, 'work');
  // a bad async list is CORRUPTED on its own
  msgs[msgs.length - 1].message.spanChunk.spanEvent[1].sequence = 4;
  assert.match(analyze(msgs).transactions[0].corrupted[0].list, /^async 5\/1$/);
});

test('a chunk without its span is reported', () => {
  const msgs = threeServices();
  msgs.push(rec('inventory', chunk({ spanId: '12345', spanEvent: [ev(0, 1)] })));
  const r = analyze(msgs);
  assert.equal(r.summary.orphanChunks, 1);
  assert.equal(r.summary.ok, false);
});

test('unregistered apiId / stringId / sqlId are reported; metadata is keyed by agentid and starttime', () => {
  const msgs = threeServices();
  msgs[5].message.span.apiId = 99; // inventory registered nothing
  msgs[5].message.span.exceptionInfo = { intValue: 4, stringValue: { value: 'boom' } };
  // registered, but under another starttime: does not count
  msgs.push({ ...meta('inventory', 'RequestStringMetaData', { stringId: 4, stringValue: 'java.lang.Error' }),
    headers: { ...AGENTS.inventory, starttime: '1' } });
  msgs[4].message.span.spanEvent[1].annotation[0].value.intStringStringValue.intValue = 8;
  const r = analyze(msgs);
  assert.deepEqual(r.unregistered.apiIds.map((x) => [x.agentId, x.startTime, x.id]), [['inv-1', '1700000000900', 99]]);
  assert.deepEqual(r.unregistered.stringIds.map((x) => [x.agentId, x.id]), [['inv-1', 4]]);
  assert.deepEqual(r.unregistered.sqlIds.map((x) => [x.agentId, x.id]), [['back-1', 8]]);
  assert.equal(spanOf(r, 'inventory').api, 'API-METADATA-NOT-FOUND(99)');
  assert.equal(r.summary.ok, false);
});

test('an empty transactionId.agentId means the sender\'s agentid header', () => {
  const msgs = threeServices();
  for (const m of msgs) {
    if (m.service === 'Span' && m.headers.applicationname === 'frontend') m.message.span.transactionId = { ...TX, agentId: '' };
  }
  const r = analyze(msgs);
  assert.equal(r.transactions.length, 1, 'front-1 is also the frontend header');
  const split = threeServices();
  split[5].message.span.transactionId = { ...TX, agentId: '' }; // inventory: becomes inv-1^...
  assert.equal(analyze(split).transactions.length, 2, 'a callee with an empty agentId splits the trace');
});

test('spans the collector rejected are ignored', () => {
  const msgs = threeServices();
  msgs[5].accepted = false;
  assert.equal(analyze(msgs).summary.spans, 2);
});

test('CLI: JSON array and JSON lines input, --strict exit code, --text', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'calltree-'));
  const good = path.join(dir, 'good.json');
  const bad = path.join(dir, 'bad.jsonl');
  fs.writeFileSync(good, JSON.stringify(threeServices()));
  const badMsgs = threeServices();
  badMsgs[3].message.span.spanEvent = [ev(0, 1), ev(1, 3)];
  fs.writeFileSync(bad, badMsgs.map((m) => JSON.stringify({ kind: 'message', ...m })).join('\n'));
  const cli = path.join(__dirname, '..', 'calltree.js');
  const run = (...args) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  const a = run(good);
  assert.equal(a.status, 0, a.stderr);
  assert.equal(JSON.parse(a.stdout).summary.ok, true);
  assert.equal(run('--strict', good).status, 0);
  const b = run('--strict', bad);
  assert.equal(b.status, 1);
  assert.equal(JSON.parse(b.stdout).summary.corruptedNodes, 1);
  const t = run('--text', bad);
  assert.match(t.stdout, /CORRUPTED: event sequence 1 has depth 3/);
  assert.equal(run().status, 64);
  assert.equal(run(path.join(dir, 'missing.json')).status, 66);
});
