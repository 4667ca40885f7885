'use strict';
// Proves that the project's .proto files (proto/pinpoint) are wire-exact with
// Pinpoint's own generated code as shipped in pinpoint-node-agent@0.8.7:
//  1. static: every field the agent's serializer writes has the same number,
//     wire type and name in our schema; every service method has the same
//     path and streaming kind;
//  2. dynamic, both directions: fully populated samples (every oneof member,
//     negative and extreme values) encoded by one side and decoded by the
//     other keep every field value.
// The agent predates Pinpoint 3.1 and a few later additions; those parts of
// our schema are listed exactly below and checked with protobufjs alone.

const test = require('node:test');
const assert = require('node:assert/strict');
const protobuf = require('protobufjs');

const schema = require('../lib/schema');
const agent = require('../lib/agent-pb');
const { sample, maxOneofSize } = require('../lib/samples');

const root = schema.loadRoot();
const types = schema.v1Types(root);

// Our messages that pinpoint-node-agent 0.8.7 does not have.
const TYPES_NOT_IN_AGENT = [
  'PAgentUriStat', 'PAttribute', 'PAttributeArrayValue', 'PAttributeKeyValueList',
  'PAttributeValue', 'PBytesStringStringValue', 'PEachUriStat', 'PException',
  'PExceptionMetaData', 'PLoadedClass', 'PPartialSuccess', 'PProfilerMetric',
  'PProfilerMetricField', 'PSpanMessageBatch', 'PSpanResultBatch', 'PSqlUidMetaData',
  'PStackTraceElement', 'PTotalThread', 'PUriHistogram',
].sort();

// Fields of shared messages that the 0.8.7 agent does not have.
const FIELDS_NOT_IN_AGENT = [
  'PAgentStat.loadedClass', // 14
  'PAgentStat.totalThread', // 13
  'PAnnotationValue.bytesStringStringValue', // 14
  'PApiMetaData.location', // 5
  'PParentInfo.parentServiceName', // 4, 3.1+
  'PSpan.attribute', // 17, 3.1+
  'PSpanEvent.attribute', // 14, 3.1+
  'PStatMessage.agentUriStat', // 3
  'PStatMessage.profilerMetric', // 4
].sort();

// Agent messages we deliberately do not define (profiler command channel).
const AGENT_TYPES_NOT_IN_OURS = ['PActiveThreadDump', 'PActiveThreadLightDump', 'PThreadLightDump'];

// Service methods we define that the agent's Service_grpc_pb.js lacks.
const METHODS_NOT_IN_AGENT = [
  '/v1.Metadata/RequestExceptionMetaData',
  '/v1.Metadata/RequestSqlUidMetaData',
  '/v1.Span/SendSpanBatch',
];

const sharedTypes = [...types.values()].filter((t) => agent.classFor(t));

function expectedWriters(f) {
  if (f.resolvedType instanceof protobuf.Type) return [f.repeated ? 'RepeatedMessage' : 'Message'];
  if (f.resolvedType instanceof protobuf.Enum) return [f.repeated ? 'PackedEnum' : 'Enum'];
  const base = {
    int32: 'Int32', sint32: 'Sint32', int64: 'Int64', sfixed64: 'Sfixed64',
    string: 'String', bool: 'Bool', double: 'Double', bytes: 'Bytes',
  }[f.type];
  assert.ok(base, `unexpected field type ${f.type}`);
  if (!f.repeated) return [base, `${base}String`]; // "...String" = jstype JS_STRING
  return f.type === 'string' || f.type === 'bytes' ? [`Repeated${base}`] : [`Packed${base}`];
}

test('every message of ours is either in the agent code or listed as newer', () => {
  const missing = [...types.values()].filter((t) => !agent.classFor(t)).map((t) => t.name).sort();
  assert.deepEqual(missing, TYPES_NOT_IN_AGENT);
});

test('every span/stat/annotation message of the agent exists in ours', () => {
  const ours = new Set(types.keys());
  const theirs = [...agent.classes.keys()]
    .filter((n) => /^P[A-Z]/.test(n) && !ours.has(n)).sort();
  assert.deepEqual(theirs, AGENT_TYPES_NOT_IN_OURS);
});

test('static: field numbers, wire types and names match the agent serializers', () => {
  const notInAgent = [];
  for (const type of sharedTypes) {
    const layout = agent.agentWireLayout(agent.classFor(type));
    const byNumber = new Map(type.fieldsArray.map((f) => [f.id, f]));
    for (const { number, writer } of layout) {
      const f = byNumber.get(number);
      assert.ok(f, `${type.name}: the agent writes field ${number}, ours has no such field`);
      assert.ok(expectedWriters(f).includes(writer),
        `${type.name}.${f.name} = ${number}: ours is ${f.repeated ? 'repeated ' : ''}${f.type}, agent writes ${writer}`);
      assert.equal(agent.agentFieldNumber(type, f), number,
        `${type.name}.${f.name}: the agent's accessor of that name reads another field number`);
    }
    const written = new Set(layout.map((l) => l.number));
    for (const f of type.fieldsArray) {
      if (!written.has(f.id)) notInAgent.push(`${type.name}.${f.name}`);
    }
  }
  assert.deepEqual(notInAgent.sort(), FIELDS_NOT_IN_AGENT);
});

test('static: enum values match the agent', () => {
  const checked = new Set();
  for (const mod of Object.values(agent.modules)) {
    for (const [name, values] of Object.entries(mod)) {
      if (!/^P[A-Z]\w*$/.test(name) || typeof values !== 'object' || values === null) continue;
      let ours;
      try { ours = root.lookupEnum(`v1.${name}`); } catch { continue; }
      for (const [k, v] of Object.entries(values)) assert.equal(ours.values[k], v, `${name}.${k}`);
      const extra = Object.keys(ours.values).filter((k) => !(k in values));
      checked.add(`${name}${extra.length ? ` (+ ${extra.join(', ')})` : ''}`);
    }
  }
  assert.deepEqual([...checked].sort(), ['PJvmGcType (+ JVM_GC_TYPE_ZGC)', 'PThreadState']);
});

test('static: service paths and streaming kinds match Service_grpc_pb.js', () => {
  const agentMethods = new Map();
  for (const def of Object.values(agent.services)) {
    if (typeof def !== 'object' || def === null) continue;
    for (const m of Object.values(def)) if (m && m.path) agentMethods.set(m.path, m);
  }
  const extra = [];
  for (const svc of root.lookup('v1').nestedArray.filter((n) => n instanceof protobuf.Service)) {
    for (const m of svc.methodsArray) {
      const p = `/v1.${svc.name}/${m.name}`;
      const theirs = agentMethods.get(p);
      if (!theirs) { extra.push(p); continue; }
      assert.equal(Boolean(m.requestStream), theirs.requestStream, `${p} requestStream`);
      assert.equal(Boolean(m.responseStream), theirs.responseStream, `${p} responseStream`);
      const reqName = m.resolvedRequestType.name;
      const resName = m.resolvedResponseType.name;
      assert.equal(theirs.requestType, agent.classFor(m.resolvedRequestType), `${p} request ${reqName}`);
      assert.equal(theirs.responseType, agent.classFor(m.resolvedResponseType), `${p} response ${resName}`);
    }
  }
  assert.deepEqual(extra.sort(), METHODS_NOT_IN_AGENT);
  // and nothing of Agent/Metadata/Span/Stat is missing on our side
  for (const p of agentMethods.keys()) {
    if (p.startsWith('/v1.ProfilerCommandService/')) continue;
    const [, svc, method] = /^\/v1\.(\w+)\/(\w+)$/.exec(p);
    assert.ok(root.lookupService(`v1.${svc}`).methods[method], `${p} missing in service.proto`);
  }
});

function onlyKnownFields(type, f) {
  return !agent.classFor(type) || agent.agentKnowsField(type, f);
}
function sampleUsesUnknownFields(type, obj) {
  return JSON.stringify(agent.canonical(type, obj)) !== JSON.stringify(agent.canonical(type, obj, onlyKnownFields));
}

for (const type of sharedTypes) {
  const Cls = agent.classFor(type);
  const samples = maxOneofSize(type);
  const opts = { exactLong: agent.agentLongIsExact };

  test(`dynamic: ${type.name} ours -> agent keeps every field (${samples} samples)`, () => {
    for (let k = 0; k < samples; k++) {
      const obj = sample(type, k, opts);
      const bytes = schema.encodeFromObject(type, obj);
      const decoded = Cls.deserializeBinary(new Uint8Array(bytes));
      const want = agent.canonical(type, schema.decodeToJson(type, bytes), onlyKnownFields);
      assert.deepEqual(agent.fromAgent(type, decoded), want, `${type.name} sample ${k}`);
      assert.deepEqual(agent.canonical(type, schema.decodeToJson(type, bytes)), agent.canonical(type, obj),
        `${type.name} sample ${k} protobufjs round trip`);
      if (!sampleUsesUnknownFields(type, obj)) {
        // the agent re-encodes to the very same bytes
        assert.equal(Buffer.from(decoded.serializeBinary()).toString('hex'), bytes.toString('hex'),
          `${type.name} sample ${k}: re-encoded bytes differ`);
      }
    }
  });

  test(`dynamic: ${type.name} agent -> ours keeps every field (${samples} samples)`, () => {
    for (let k = 0; k < samples; k++) {
      const obj = sample(type, k, opts);
      const msg = agent.toAgent(type, obj);
      const bytes = Buffer.from(msg.serializeBinary());
      const got = agent.canonical(type, schema.decodeToJson(type, bytes));
      assert.deepEqual(got, agent.canonical(type, obj, onlyKnownFields), `${type.name} sample ${k}`);
    }
  });
}

test('explicit: negative ids and zigzag fields read by the agent as written', () => {
  const T = types.get('PSpanMessage');
  const bytes = schema.encodeFromObject(T, {
    span: {
      version: 1,
      transactionId: { agentId: 'otel', agentStartTime: '790211418057950173', sequence: '-8914616934935285348' },
      spanId: '-8914616934935285348',
      parentSpanId: '-1',
      startTime: '1700000000000',
      elapsed: 12,
      apiId: -3, // int32 in PSpan
      serviceType: 1220,
      err: -1, // sint32
      spanEvent: [{
        sequence: 0, depth: 1, startElapsed: 1, endElapsed: 5,
        serviceType: -9052, // sint32 in PSpanEvent
        apiId: -42, // sint32 in PSpanEvent
        nextEvent: { messageEvent: { nextSpanId: '-2', endPoint: 'b:80', destinationId: 'b:80' } },
        annotation: [{ key: -1, value: { shortValue: -300 } }, { key: 46, value: { intValue: 200 } }],
      }],
    },
  });
  const m = agent.classes.get('PSpanMessage').deserializeBinary(new Uint8Array(bytes));
  assert.equal(m.getFieldCase(), agent.classes.get('PSpanMessage').FieldCase.SPAN);
  const s = m.getSpan();
  assert.equal(s.getSpanid(), '-8914616934935285348');
  assert.equal(s.getParentspanid(), '-1');
  assert.equal(s.getTransactionid().getAgentstarttime(), '790211418057950173');
  assert.equal(s.getTransactionid().getSequence(), '-8914616934935285348');
  assert.equal(s.getApiid(), -3);
  assert.equal(s.getErr(), -1);
  const e = s.getSpaneventList()[0];
  assert.equal(e.getServicetype(), -9052);
  assert.equal(e.getApiid(), -42);
  assert.equal(e.getNextevent().getFieldCase(), agent.classes.get('PNextEvent').FieldCase.MESSAGEEVENT);
  assert.equal(e.getNextevent().getMessageevent().getNextspanid(), -2);
  assert.equal(e.getAnnotationList()[0].getKey(), -1);
  assert.equal(e.getAnnotationList()[0].getValue().getShortvalue(), -300);
  assert.equal(e.getAnnotationList()[1].getValue().getIntvalue(), 200);
});

test('explicit: PSpanMessage carries a spanChunk through the agent', () => {
  const T = types.get('PSpanMessage');
  const bytes = schema.encodeFromObject(T, {
    spanChunk: {
      version: 1,
      transactionId: { agentId: 'a', agentStartTime: '1', sequence: '2' },
      spanId: '-5', keyTime: '1700000000123', applicationServiceType: 1220,
      localAsyncId: { asyncId: 7, sequence: 1 },
      spanEvent: [{ sequence: 0, depth: 1, serviceType: 100 }],
    },
  });
  const Cls = agent.classes.get('PSpanMessage');
  const m = Cls.deserializeBinary(new Uint8Array(bytes));
  assert.equal(m.getFieldCase(), Cls.FieldCase.SPANCHUNK);
  assert.equal(m.getSpanchunk().getSpanid(), '-5');
  assert.equal(m.getSpanchunk().getKeytime(), 1700000000123);
  assert.equal(m.getSpanchunk().getLocalasyncid().getAsyncid(), 7);
});

test('explicit: every PAnnotationValue variant the agent knows arrives as that variant', () => {
  const T = types.get('PAnnotationValue');
  const Cls = agent.classes.get('PAnnotationValue');
  const seen = [];
  for (const member of T.oneofs.field.fieldsArray) {
    const k = T.oneofs.field.fieldsArray.indexOf(member);
    const obj = sample(T, k);
    assert.ok(member.name in obj);
    const m = Cls.deserializeBinary(new Uint8Array(schema.encodeFromObject(T, obj)));
    if (!agent.agentKnowsField(T, member)) {
      assert.equal(m.getFieldCase(), Cls.FieldCase.FIELD_NOT_SET, member.name);
      continue;
    }
    assert.equal(m.getFieldCase(), member.id, member.name);
    seen.push(member.id);
  }
  assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
});

test('3.1+ additions: the 0.8.7 agent skips them and keeps the rest (forward compatible)', () => {
  const T = types.get('PSpan');
  const bytes = schema.encodeFromObject(T, {
    version: 1, spanId: '7', parentSpanId: '-1',
    acceptEvent: { rpc: '/x', parentInfo: { parentApplicationName: 'up', parentServiceName: 'svc' } },
    attribute: [{ key: 'k', value: { kvlistValue: { values: [{ key: 'n', value: { longValue: '-5' } }] } } }],
    spanEvent: [{ sequence: 0, depth: 1, attribute: [{ key: 'a', value: { boolValue: true } }] }],
    apiId: 9,
  });
  const s = agent.classes.get('PSpan').deserializeBinary(new Uint8Array(bytes));
  assert.equal(s.getSpanid(), '7');
  assert.equal(s.getApiid(), 9);
  assert.equal(s.getAcceptevent().getParentinfo().getParentapplicationname(), 'up');
  assert.equal(s.getSpaneventList()[0].getDepth(), 1);
});

test('3.1+ and newer messages round-trip through our schema (no agent code to compare)', () => {
  for (const name of TYPES_NOT_IN_AGENT) {
    const type = types.get(name);
    for (let k = 0; k < maxOneofSize(type); k++) {
      const obj = sample(type, k);
      const back = schema.decodeToJson(type, schema.encodeFromObject(type, obj));
      assert.deepEqual(agent.canonical(type, back), agent.canonical(type, obj), `${name} sample ${k}`);
    }
  }
  // a batch answer with a partial success, as a 3.1 collector sends it
  const R = types.get('PSpanResultBatch');
  const hex = schema.encodeFromObject(R, { partial_success: { rejected_spans: '2', errorId: '-1', error_message: 'bad version' } }).toString('hex');
  // field 1 (len) { field 1 varint 2, field 2 varint -1 (10 bytes), field 3 string }
  assert.equal(hex, '0a1a080210ffffffffffffffffff011a0b6261642076657273696f6e');
});
