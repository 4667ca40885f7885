#!/usr/bin/env node
'use strict';
// Call-tree and server-map checker for recorded Pinpoint traffic.
//
// Applies the Pinpoint web's rules (shared/spec/pinpoint-wire.md, "How the
// web builds the call tree" and "Server map") to messages recorded by
// server.js, and reports what the web would show: roots, UNKNOWN nodes
// ("No Agent Data"), CORRUPTED nodes, the call tree, server-map edges, and
// ids used in spans that were never registered through the Metadata service.
//
// Usage as a CLI:
//   node calltree.js messages.json          JSON report on stdout
//   node calltree.js --text messages.json   human-readable trees
//   node calltree.js --strict messages.json exit 1 unless the report is clean
// The input is the JSON array of GET /messages, or the JSON lines written by
// --record, or {"messages": [...]}; "-" reads stdin.
//
// Usage as a module: const { analyze, render } = require('./calltree');

const fs = require('node:fs');

// ---------------------------------------------------------------- constants

const API_ANNOTATION = 12;
const SQL_ID_ANNOTATION = 20;
const USER = { application: 'USER', serviceType: 2, category: 'USER' };

// Service type codes from the spec, with whether they record statistics
// (draw server-map edges). Codes not listed fall back to the ranges below.
const SERVICE_TYPES = new Map([
  [1, ['UNKNOWN', false]], [2, ['USER', false]], [100, ['ASYNC', false]],
  [5000, ['INTERNAL_METHOD', false]], [5050, ['SPRING', false]],
  [1000, ['STAND_ALONE', true]], [1010, ['TOMCAT', true]], [1130, ['GRPC_SERVER', true]],
  [1220, ['OPENTELEMETRY_SERVER', true]], [1300, ['C_CPP', true]], [1400, ['NODE', true]],
  [1500, ['PHP', true]], [1700, ['PYTHON', true]], [1800, ['GO', true]],
  [9052, ['HTTP_CLIENT_4', true]], [9056, ['ASYNC_HTTP_CLIENT', true]], [9401, ['GO_HTTP_CLIENT', true]],
  [9900, ['PYTHON_REMOTE_METHOD', true]], [9800, ['C_CPP_REMOTE_METHOD', true]],
  [9700, ['PHP_REMOTE_METHOD', true]], [9310, ['OPENTELEMETRY_CLIENT', true]], [9160, ['GRPC', true]],
  [9203, ['ELASTICSEARCH', false]],
  [2050, ['UNKNOWN_DB', false]], [2051, ['UNKNOWN_DB_EXECUTE_QUERY', true]],
  [2100, ['MYSQL', false]], [2101, ['MYSQL_EXECUTE_QUERY', true]],
  [2150, ['MARIADB', false]], [2151, ['MARIADB_EXECUTE_QUERY', true]],
  [2250, ['MSSQL_JDBC', false]], [2251, ['MSSQL_JDBC_QUERY', true]],
  [2300, ['ORACLE', false]], [2301, ['ORACLE_EXECUTE_QUERY', true]],
  [2500, ['POSTGRESQL', false]], [2501, ['POSTGRESQL_EXECUTE_QUERY', true]],
  [2600, ['CASSANDRA', false]], [2601, ['CASSANDRA_EXECUTE_QUERY', true]],
  [2650, ['MONGO', false]], [2651, ['MONGO_EXECUTE_QUERY', true]],
  [2800, ['CLICK_HOUSE', false]], [2801, ['CLICK_HOUSE_EXECUTE_QUERY', true]],
  [8200, ['REDIS', true]], [8203, ['REDIS_REDISSON', true]], [8050, ['MEMCACHED', true]],
  [8300, ['RABBITMQ_CLIENT', true]], [8310, ['ACTIVEMQ_CLIENT', true]],
  [8400, ['ROCKETMQ_CLIENT', true]], [8660, ['KAFKA_CLIENT', true]],
]);

function category(code) {
  if (code === 2) return 'USER';
  if (code >= 1000 && code <= 1999) return 'SERVER';
  if (code >= 2000 && code <= 2999) return 'DATABASE';
  if (code >= 8000 && code <= 8299) return 'CACHE';
  if (code >= 8300 && code <= 8799) return 'QUEUE';
  if (code >= 9000 && code <= 9999) return 'RPC';
  return 'OTHER';
}

/** { stats, assumed, name } for an event's service type. */
function statisticsOf(code) {
  const known = SERVICE_TYPES.get(code);
  if (known) return { name: known[0], stats: known[1], assumed: false };
  const cat = category(code);
  const inRange = cat === 'DATABASE' || cat === 'CACHE' || cat === 'QUEUE' || cat === 'RPC';
  return { name: `CODE_${code}`, stats: inRange, assumed: inRange };
}

// ---------------------------------------------------------------- helpers

/** 64-bit value (string or number) -> canonical decimal string. */
function i64(v, fallback = '0') {
  if (v === undefined || v === null || v === '') return fallback;
  try {
    return BigInt(typeof v === 'number' ? Math.trunc(v) : String(v)).toString();
  } catch {
    return String(v);
  }
}
function int(v) {
  const n = Number(v ?? 0);
  return Number.isFinite(n) ? Math.trunc(n) : 0;
}
function header(entry, key) {
  const h = (entry && entry.headers) || {};
  const v = h[key];
  return v === undefined || v === null ? '' : String(v);
}

function annotationString(annotations, key) {
  for (const a of annotations || []) {
    if (int(a.key) === key && a.value && typeof a.value.stringValue === 'string') return a.value.stringValue;
  }
  return undefined;
}

function isSpanEntry(e) {
  return e && e.service === 'Span' && e.message && e.accepted !== false
    && (e.kind === undefined || e.kind === 'message');
}

// ---------------------------------------------------------------- metadata

function collectMetadata(entries) {
  const meta = { api: new Map(), string: new Map(), sql: new Map() };
  for (const e of entries) {
    if (!e || e.service !== 'Metadata' || !e.message) continue;
    const agent = `${header(e, 'agentid')}^${i64(header(e, 'starttime'))}`;
    const m = e.message;
    if (e.method === 'RequestApiMetaData') meta.api.set(`${agent}^${int(m.apiId)}`, m.apiInfo || '');
    else if (e.method === 'RequestStringMetaData') meta.string.set(`${agent}^${int(m.stringId)}`, m.stringValue || '');
    else if (e.method === 'RequestSqlMetaData') meta.sql.set(`${agent}^${int(m.sqlId)}`, m.sql || '');
  }
  return meta;
}

// ---------------------------------------------------------------- events

/**
 * Resolves wire compaction in wire order, as the collector does per span or
 * chunk: depth 0 = previous event's depth (0 for the first event);
 * startElapsed accumulates from the previous event.
 */
function bindEvents(list, source) {
  const out = [];
  let prev = null;
  for (const ev of list || []) {
    const wireDepth = int(ev.depth);
    const depth = wireDepth === 0 ? (prev ? prev.depth : 0) : wireDepth;
    const startElapsed = int(ev.startElapsed) + (prev ? prev.startElapsed : 0);
    const bound = {
      sequence: int(ev.sequence),
      depth,
      wireDepth,
      startElapsed,
      endElapsed: int(ev.endElapsed),
      serviceType: int(ev.serviceType),
      apiId: int(ev.apiId),
      asyncEvent: int(ev.asyncEvent),
      annotation: ev.annotation || [],
      exceptionInfo: ev.exceptionInfo || null,
      nextSpanId: null,
      destinationId: '',
      endPoint: '',
      source,
    };
    const me = ev.nextEvent && ev.nextEvent.messageEvent;
    if (me) {
      bound.nextSpanId = i64(me.nextSpanId);
      bound.destinationId = me.destinationId || '';
      bound.endPoint = me.endPoint || '';
    }
    out.push(bound);
    prev = bound;
  }
  return out;
}

/**
 * Checks the sequence/depth rules on events sorted by sequence. Returns the
 * index of the first offending event and why, or null when valid.
 */
function findCorruption(events) {
  for (let i = 0; i < events.length; i++) {
    const ev = events[i];
    if (ev.sequence !== i) {
      return { index: i, reason: i === 0
        ? `first event has sequence ${ev.sequence}, expected 0`
        : `sequence ${ev.sequence} follows ${events[i - 1].sequence}, expected ${i}` };
    }
    if (i === 0 && ev.depth !== 1) {
      return { index: 0, reason: `first event has depth ${ev.depth}, expected 1` };
    }
    if (i > 0) {
      const prev = events[i - 1].depth;
      if (ev.depth < 1 || ev.depth > prev + 1) {
        return { index: i, reason: `event sequence ${ev.sequence} has depth ${ev.depth} after depth ${prev}, allowed 1..${prev + 1}` };
      }
    }
  }
  return null;
}

// ---------------------------------------------------------------- analysis

function apiLabel(ctx, agentKey, apiId, annotations) {
  if (apiId === 0) {
    const s = annotationString(annotations, API_ANNOTATION);
    return s === undefined ? '' : s;
  }
  const known = ctx.meta.api.get(`${agentKey}^${apiId}`);
  return known === undefined ? `API-METADATA-NOT-FOUND(${apiId})` : known;
}

function noteIdUse(ctx, kind, agentKey, id, where) {
  const registered = ctx.meta[kind].has(`${agentKey}^${id}`);
  if (registered) return;
  const key = `${kind}^${agentKey}^${id}`;
  let rec = ctx.unregistered.get(key);
  if (!rec) {
    const [agentId, startTime] = agentKey.split('^');
    rec = { kind, agentId, startTime, id, uses: 0, where: [] };
    ctx.unregistered.set(key, rec);
  }
  rec.uses += 1;
  if (rec.where.length < 5) rec.where.push(where);
}

function checkEventIds(ctx, seg, ev) {
  const where = `${seg.application}/${seg.agentId} span ${seg.spanId} seq ${ev.sequence}`;
  if (ev.apiId !== 0) noteIdUse(ctx, 'api', seg.agentKey, ev.apiId, where);
  if (ev.exceptionInfo) noteIdUse(ctx, 'string', seg.agentKey, int(ev.exceptionInfo.intValue), where);
  for (const a of ev.annotation) {
    if (int(a.key) === SQL_ID_ANNOTATION && a.value && a.value.intStringStringValue) {
      noteIdUse(ctx, 'sql', seg.agentKey, int(a.value.intStringStringValue.intValue), where);
    }
  }
}

function newSegment(entry, span) {
  const application = header(entry, 'applicationname');
  const agentId = header(entry, 'agentid');
  const accept = span.acceptEvent || {};
  const parentInfo = accept.parentInfo || null;
  return {
    application,
    agentId,
    agentKey: `${agentId}^${i64(header(entry, 'starttime'))}`,
    spanId: i64(span.spanId),
    parentSpanId: i64(span.parentSpanId, '0'),
    serviceType: int(span.serviceType),
    applicationServiceType: int(span.applicationServiceType),
    apiId: int(span.apiId),
    annotation: span.annotation || [],
    exceptionInfo: span.exceptionInfo || null,
    rpc: accept.rpc || '',
    err: int(span.err),
    startTime: i64(span.startTime),
    elapsed: int(span.elapsed),
    parentInfo: parentInfo && {
      parentApplicationName: parentInfo.parentApplicationName || '',
      parentApplicationType: int(parentInfo.parentApplicationType),
      acceptorHost: parentInfo.acceptorHost || '',
    },
    events: bindEvents(span.spanEvent, 'span'),
    asyncLists: [],
    node: null,
  };
}

function appType(seg) {
  return seg.applicationServiceType || seg.serviceType;
}

function eventNode(ctx, seg, ev) {
  const st = statisticsOf(ev.serviceType);
  const node = {
    type: 'event',
    sequence: ev.sequence,
    depth: ev.depth,
    serviceType: ev.serviceType,
    serviceTypeName: st.name,
    api: apiLabel(ctx, seg.agentKey, ev.apiId, ev.annotation),
    children: [],
  };
  if (ev.nextSpanId !== null) node.nextSpanId = ev.nextSpanId;
  if (ev.destinationId) node.destinationId = ev.destinationId;
  if (ev.asyncEvent) node.asyncEvent = ev.asyncEvent;
  return node;
}

/** Builds event nodes for one sorted event list under `parent.children`. */
function buildEventTree(ctx, seg, events, parent, corruptedOut, label) {
  const corruption = findCorruption(events);
  const good = corruption ? events.slice(0, corruption.index) : events;
  const stack = [parent]; // stack[d] = node at depth d
  const nodes = [];
  for (const ev of good) {
    const node = eventNode(ctx, seg, ev);
    const p = stack[ev.depth - 1] || stack[stack.length - 1];
    p.children.push(node);
    stack.length = ev.depth;
    stack[ev.depth] = node;
    nodes.push([ev, node]);
  }
  if (corruption) {
    const corrupted = { type: 'CORRUPTED', reason: corruption.reason, children: [] };
    parent.children.push(corrupted);
    for (const ev of events.slice(corruption.index)) {
      const node = eventNode(ctx, seg, ev);
      corrupted.children.push(node);
      nodes.push([ev, node]);
    }
    corruptedOut.push({
      application: seg.application, agentId: seg.agentId, spanId: seg.spanId,
      list: label, reason: corruption.reason,
    });
  }
  return nodes;
}

function analyzeTransaction(ctx, txid, items) {
  const tx = {
    transactionId: txid,
    state: 'COMPLETE',
    spans: 0,
    chunks: 0,
    roots: [],
    unknown: [],
    corrupted: [],
    orphanChunks: [],
    duplicateSpans: [],
    issues: [],
    tree: [],
    edges: [],
  };
  // 1. spans, keyed by (applicationName, agentId, spanId)
  const segments = new Map();
  for (const { entry, span } of items.filter((i) => i.span)) {
    tx.spans += 1;
    const seg = newSegment(entry, span);
    const key = `${seg.application}\u0000${seg.agentId}\u0000${seg.spanId}`;
    if (segments.has(key)) {
      tx.duplicateSpans.push({ application: seg.application, agentId: seg.agentId, spanId: seg.spanId });
      continue;
    }
    segments.set(key, seg);
  }
  // 2. chunks join their span
  for (const { entry, chunk } of items.filter((i) => i.chunk)) {
    tx.chunks += 1;
    const application = header(entry, 'applicationname');
    const agentId = header(entry, 'agentid');
    const spanId = i64(chunk.spanId);
    const seg = segments.get(`${application}\u0000${agentId}\u0000${spanId}`);
    const events = bindEvents(chunk.spanEvent, 'chunk');
    if (!seg) {
      tx.orphanChunks.push({ application, agentId, spanId, events: events.length });
      continue;
    }
    if (chunk.localAsyncId) {
      seg.asyncLists.push({
        asyncId: int(chunk.localAsyncId.asyncId),
        sequence: int(chunk.localAsyncId.sequence),
        events,
      });
    } else {
      seg.events.push(...events);
    }
  }
  if (tx.orphanChunks.length) tx.issues.push(`${tx.orphanChunks.length} chunk(s) without their span`);

  // 3. per span: sort, validate, build the event tree; register ids
  const callers = new Map(); // `${callerSpanId}|${nextSpanId}` -> [event node, seg]
  for (const seg of segments.values()) {
    seg.events.sort((a, b) => a.sequence - b.sequence);
    seg.node = {
      type: 'span',
      application: seg.application,
      agentId: seg.agentId,
      spanId: seg.spanId,
      parentSpanId: seg.parentSpanId,
      serviceType: seg.serviceType,
      applicationServiceType: seg.applicationServiceType,
      api: apiLabel(ctx, seg.agentKey, seg.apiId, seg.annotation),
      rpc: seg.rpc,
      err: seg.err,
      children: [],
    };
    if (seg.apiId !== 0) noteIdUse(ctx, 'api', seg.agentKey, seg.apiId, `${seg.application}/${seg.agentId} span ${seg.spanId}`);
    if (seg.exceptionInfo) noteIdUse(ctx, 'string', seg.agentKey, int(seg.exceptionInfo.intValue), `${seg.application}/${seg.agentId} span ${seg.spanId}`);

    const pairs = buildEventTree(ctx, seg, seg.events, seg.node, tx.corrupted, 'span');
    for (const [ev, node] of pairs) {
      checkEventIds(ctx, seg, ev);
      if (ev.nextSpanId !== null && ev.nextSpanId !== '-1') callers.set(`${seg.spanId}|${ev.nextSpanId}`, [node, seg, ev]);
    }
    // async continuations hang under the event that started them
    seg.asyncLists.sort((a, b) => a.asyncId - b.asyncId || a.sequence - b.sequence);
    for (const al of seg.asyncLists) {
      al.events.sort((a, b) => a.sequence - b.sequence);
      const holder = { type: 'async', asyncId: al.asyncId, sequence: al.sequence, children: [] };
      const starter = pairs.find(([ev]) => ev.asyncEvent === al.asyncId);
      if (starter) starter[1].children.push(holder);
      else {
        seg.node.children.push(holder);
        tx.issues.push(`span ${seg.spanId}: no event starts asyncId ${al.asyncId}`);
      }
      const asyncPairs = buildEventTree(ctx, seg, al.events, holder, tx.corrupted, `async ${al.asyncId}/${al.sequence}`);
      for (const [ev, node] of asyncPairs) {
        checkEventIds(ctx, seg, ev);
        if (ev.nextSpanId !== null && ev.nextSpanId !== '-1') callers.set(`${seg.spanId}|${ev.nextSpanId}`, [node, seg, ev]);
      }
    }
  }

  // 4. link spans: child (parentSpanId, spanId) == caller (spanId, event.nextSpanId)
  const byAcceptor = new Map();
  for (const seg of segments.values()) {
    if (seg.parentInfo && seg.parentInfo.acceptorHost) byAcceptor.set(seg.parentInfo.acceptorHost, seg);
  }
  for (const seg of segments.values()) {
    const link = callers.get(`${seg.parentSpanId}|${seg.spanId}`);
    if (link) {
      link[0].children.push(seg.node);
      continue;
    }
    if (seg.parentSpanId === '-1') {
      tx.roots.push(seg.spanId);
      tx.tree.push(seg.node);
      continue;
    }
    tx.unknown.push({
      application: seg.application, agentId: seg.agentId, spanId: seg.spanId,
      parentSpanId: seg.parentSpanId,
      reason: `no event with nextSpanId ${seg.spanId} in a span with spanId ${seg.parentSpanId}`,
    });
    tx.tree.push({ type: 'UNKNOWN', label: 'No Agent Data', children: [seg.node] });
  }
  if (tx.unknown.length || tx.roots.length === 0) tx.state = 'PROGRESS';
  if (tx.roots.length === 0) tx.issues.push('no root span (parentSpanId -1)');
  if (tx.roots.length > 1) tx.issues.push(`${tx.roots.length} root spans`);
  if (tx.duplicateSpans.length) tx.issues.push(`${tx.duplicateSpans.length} duplicate span(s)`);

  // 5. server map
  const edges = new Map();
  const addEdge = (from, to, extra = {}) => {
    const key = `${from.application}|${from.serviceType}|${to.application}|${to.serviceType}`;
    const cur = edges.get(key);
    if (cur) cur.count += 1;
    else edges.set(key, { from, to, count: 1, ...extra });
  };
  for (const seg of segments.values()) {
    const self = { application: seg.application, serviceType: appType(seg), category: category(appType(seg)) };
    if (seg.parentSpanId === '-1') {
      addEdge(USER, self);
    } else if (seg.parentInfo && seg.parentInfo.parentApplicationName) {
      const t = seg.parentInfo.parentApplicationType;
      addEdge({ application: seg.parentInfo.parentApplicationName, serviceType: t, category: category(t) }, self);
    } else {
      tx.issues.push(`span ${seg.spanId} (${seg.application}) has a parent but no parentInfo: no in-edge`);
    }
    const allEvents = [...seg.events, ...seg.asyncLists.flatMap((a) => a.events)];
    for (const ev of allEvents) {
      if (!ev.destinationId) continue;
      const st = statisticsOf(ev.serviceType);
      if (!st.stats) continue;
      const extra = st.assumed ? { assumedStatistics: true } : {};
      if (category(ev.serviceType) === 'RPC') {
        const callee = byAcceptor.get(ev.destinationId);
        if (callee) {
          addEdge(self, { application: callee.application, serviceType: appType(callee), category: category(appType(callee)) }, extra);
        } else {
          addEdge(self, { application: ev.destinationId, serviceType: ev.serviceType, category: 'UNKNOWN' }, { ...extra, unresolved: true });
        }
      } else {
        addEdge(self, { application: ev.destinationId, serviceType: ev.serviceType, category: category(ev.serviceType) }, extra);
      }
    }
  }
  tx.edges = [...edges.values()];
  return tx;
}

/**
 * @param {object[]} entries recorded entries ({service, method, headers, message, ...})
 * @returns {object} report
 */
function analyze(entries) {
  const list = Array.isArray(entries) ? entries : [];
  const ctx = { meta: collectMetadata(list), unregistered: new Map() };
  const byTx = new Map();
  for (const e of list) {
    if (!isSpanEntry(e)) continue;
    const m = e.message;
    const span = m.span || null;
    const chunk = span ? null : (m.spanChunk || null);
    const body = span || chunk;
    if (!body || !body.transactionId) continue;
    const t = body.transactionId;
    const agentId = t.agentId || header(e, 'agentid'); // empty agentId = sender's header
    const txid = `${agentId}^${i64(t.agentStartTime)}^${i64(t.sequence)}`;
    if (!byTx.has(txid)) byTx.set(txid, []);
    byTx.get(txid).push({ entry: e, span, chunk });
  }
  const transactions = [...byTx.entries()].map(([txid, items]) => analyzeTransaction(ctx, txid, items));

  const serverMap = new Map();
  for (const tx of transactions) {
    for (const ed of tx.edges) {
      const key = `${ed.from.application}|${ed.from.serviceType}|${ed.to.application}|${ed.to.serviceType}`;
      const cur = serverMap.get(key);
      if (cur) cur.count += ed.count;
      else serverMap.set(key, { ...ed });
    }
  }
  const unregistered = { apiIds: [], stringIds: [], sqlIds: [] };
  for (const rec of ctx.unregistered.values()) {
    const out = { agentId: rec.agentId, startTime: rec.startTime, id: rec.id, uses: rec.uses, where: rec.where };
    if (rec.kind === 'api') unregistered.apiIds.push(out);
    else if (rec.kind === 'string') unregistered.stringIds.push(out);
    else unregistered.sqlIds.push(out);
  }
  const sum = (f) => transactions.reduce((n, tx) => n + f(tx), 0);
  const summary = {
    transactions: transactions.length,
    spans: sum((t) => t.spans),
    chunks: sum((t) => t.chunks),
    roots: sum((t) => t.roots.length),
    unknownNodes: sum((t) => t.unknown.length),
    corruptedNodes: sum((t) => t.corrupted.length),
    orphanChunks: sum((t) => t.orphanChunks.length),
    unregisteredApiIds: unregistered.apiIds.length,
    unregisteredStringIds: unregistered.stringIds.length,
    unregisteredSqlIds: unregistered.sqlIds.length,
  };
  summary.ok = summary.unknownNodes === 0 && summary.corruptedNodes === 0 && summary.orphanChunks === 0
    && summary.unregisteredApiIds === 0 && summary.unregisteredStringIds === 0 && summary.unregisteredSqlIds === 0
    && transactions.every((t) => t.roots.length === 1 && t.duplicateSpans.length === 0);
  return { summary, transactions, serverMap: [...serverMap.values()], unregistered };
}

// ---------------------------------------------------------------- text view

function render(report) {
  const out = [];
  const walk = (node, indent) => {
    const pad = '  '.repeat(indent);
    if (node.type === 'span') {
      out.push(`${pad}${node.application} (${node.agentId}) span ${node.spanId} ${node.api || node.rpc || ''}`.trimEnd());
    } else if (node.type === 'event') {
      const target = node.destinationId ? ` -> ${node.destinationId}` : '';
      out.push(`${pad}[${node.sequence}] ${node.serviceTypeName} ${node.api}${target}`.trimEnd());
    } else if (node.type === 'async') {
      out.push(`${pad}async ${node.asyncId}/${node.sequence}`);
    } else if (node.type === 'CORRUPTED') {
      out.push(`${pad}CORRUPTED: ${node.reason}`);
    } else {
      out.push(`${pad}UNKNOWN (${node.label})`);
    }
    for (const c of node.children || []) walk(c, indent + 1);
  };
  for (const tx of report.transactions) {
    out.push(`transaction ${tx.transactionId} [${tx.state}]`);
    for (const n of tx.tree) walk(n, 1);
    for (const ed of tx.edges) out.push(`  edge ${ed.from.application} -> ${ed.to.application} x${ed.count}`);
  }
  const s = report.summary;
  out.push(`${s.transactions} transaction(s), ${s.unknownNodes} UNKNOWN, ${s.corruptedNodes} CORRUPTED, `
    + `${s.unregisteredApiIds} unregistered apiId(s), ${s.unregisteredStringIds} unregistered stringId(s): ${s.ok ? 'OK' : 'NOT OK'}`);
  return out.join('\n');
}

// ---------------------------------------------------------------- CLI

/** Parses a JSON array, {"messages": [...]}, or JSON lines. */
function parseEntries(text) {
  const trimmed = text.trim();
  if (!trimmed) return [];
  try {
    const v = JSON.parse(trimmed);
    if (Array.isArray(v)) return v;
    if (v && Array.isArray(v.messages)) return v.messages;
    return [v];
  } catch {
    return trimmed.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  }
}

function main(argv) {
  const args = argv.slice(2);
  const text = args.includes('--text');
  const strict = args.includes('--strict');
  const files = args.filter((a) => !a.startsWith('--') || a === '-');
  if (files.length !== 1) {
    process.stderr.write('usage: node calltree.js [--text] [--strict] messages.json|-\n');
    return 64;
  }
  let entries;
  try {
    entries = parseEntries(fs.readFileSync(files[0] === '-' ? 0 : files[0], 'utf8'));
  } catch (e) {
    process.stderr.write(`calltree: cannot read ${files[0]}: ${e.message}\n`);
    return 66;
  }
  const report = analyze(entries);
  process.stdout.write(text ? `${render(report)}\n` : `${JSON.stringify(report, null, 2)}\n`);
  return strict && !report.summary.ok ? 1 : 0;
}

if (require.main === module) process.exitCode = main(process.argv);

module.exports = { analyze, render, parseEntries, statisticsOf, category };
