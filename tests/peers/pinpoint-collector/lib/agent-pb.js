'use strict';
// Access to the real Pinpoint wire code shipped in pinpoint-node-agent: the
// google-protobuf message classes (lib/data/grpc/*_pb.js) and the grpc-js
// service definitions (lib/data/grpc/Service_grpc_pb.js), plus generic
// adapters between those classes and the JSON form of lib/schema.js.
//
// The adapters only use the public accessor API of the generated classes
// (getX / setX / hasX / getXList / getX_asB64), named from our field names
// the way protoc's JS generator names them.

const path = require('node:path');
const protobuf = require('protobufjs');

const AGENT_GRPC_DIR = path.join(
  path.dirname(require.resolve('pinpoint-node-agent/package.json')),
  'lib', 'data', 'grpc');

const wrappersPb = require('google-protobuf/google/protobuf/wrappers_pb.js');
const emptyPb = require('google-protobuf/google/protobuf/empty_pb.js');

const MODULE_NAMES = ['Annotation_pb', 'Span_pb', 'Stat_pb', 'ThreadDump_pb'];
const modules = Object.fromEntries(
  MODULE_NAMES.map((m) => [m, require(path.join(AGENT_GRPC_DIR, `${m}.js`))]));
const services = require(path.join(AGENT_GRPC_DIR, 'Service_grpc_pb.js'));

function isMessageClass(v) {
  return typeof v === 'function' && v.prototype && typeof v.prototype.serializeBinary === 'function';
}

/** short message name (e.g. "PSpan") -> generated class */
const classes = new Map();
for (const mod of Object.values(modules)) {
  for (const [name, value] of Object.entries(mod)) {
    if (isMessageClass(value) && !classes.has(name)) classes.set(name, value);
  }
}
const WELL_KNOWN = new Map([
  ['google.protobuf.StringValue', wrappersPb.StringValue],
  ['google.protobuf.Empty', emptyPb.Empty],
]);

/** Generated-JS accessor stem for a proto field name: "spanId" -> "Spanid". */
function jsName(fieldName) {
  return fieldName.split('_').filter(Boolean)
    .map((p) => p.charAt(0).toUpperCase() + p.slice(1).toLowerCase()).join('');
}

function fullName(type) {
  return type.fullName.replace(/^\./, '');
}

/** The agent's class for one of our protobufjs types, or undefined. */
function classFor(type) {
  const fn = fullName(type);
  if (WELL_KNOWN.has(fn)) return WELL_KNOWN.get(fn);
  if (!fn.startsWith('v1.')) return undefined;
  return classes.get(type.name);
}

function isMessageField(f) {
  return f.resolvedType instanceof protobuf.Type;
}
function isEnumField(f) {
  return f.resolvedType instanceof protobuf.Enum;
}
function isLongField(f) {
  return ['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64'].includes(f.type);
}

function getterName(f) {
  return `get${jsName(f.name)}${f.repeated ? 'List' : ''}`;
}

/** Does the agent's generated class for `type` have this field? */
function agentKnowsField(type, f) {
  const cls = classFor(type);
  return Boolean(cls && typeof cls.prototype[getterName(f)] === 'function');
}

/**
 * The field number the agent's getter reads, taken from the getter's source
 * (`jspb.Message.getFieldWithDefault(this, 3, ...)` and the like).
 */
function agentFieldNumber(type, f) {
  const cls = classFor(type);
  const getter = cls && cls.prototype[getterName(f)];
  if (typeof getter !== 'function') return undefined;
  const m = /\(\s*this\s*,\s*(?:[A-Za-z_$][\w$.]*\s*,\s*)?(\d+)/.exec(getter.toString());
  return m ? Number(m[1]) : undefined;
}

/** True when the agent keeps this 64-bit field as a decimal string (exact). */
function agentLongIsExact(type, f) {
  const cls = classFor(type);
  if (!cls || !isLongField(f) || !agentKnowsField(type, f)) return true;
  if (f.repeated) return false;
  return typeof new cls()[getterName(f)]() === 'string';
}

/**
 * The wire layout the agent's serializer writes, parsed from the generated
 * serializeBinaryToWriter: [{ number, writer }] with writer e.g. "Sint32",
 * "Sfixed64String", "RepeatedMessage", "PackedInt32".
 */
function agentWireLayout(cls) {
  const src = String(cls.serializeBinaryToWriter);
  return [...src.matchAll(/writer\.write(\w+)\(\s*(\d+)/g)]
    .map((m) => ({ number: Number(m[2]), writer: m[1] }));
}

function isDefaultScalar(f, v) {
  if (isEnumField(f)) return v === 0 || v === f.resolvedType.valuesById[0];
  return v === 0 || v === '0' || v === '' || v === false;
}

function scalarToJson(f, v) {
  if (isLongField(f)) return String(v);
  if (isEnumField(f)) {
    const name = typeof v === 'number' ? f.resolvedType.valuesById[v] : v;
    return name === undefined ? v : name;
  }
  if (f.type === 'bytes') return typeof v === 'string' ? v : Buffer.from(v).toString('base64');
  return v;
}

/**
 * Minimal comparable form of a JSON-form message: unset / default fields
 * dropped (except set oneof members), oneof virtual properties dropped, and
 * fields for which `keep(type, field)` is false dropped.
 */
function canonical(type, obj, keep = () => true) {
  const out = {};
  if (obj === null || obj === undefined) return out;
  for (const f of type.fieldsArray) {
    if (!keep(type, f)) continue;
    const v = obj[f.name];
    if (v === undefined || v === null) continue;
    if (f.repeated) {
      if (!v.length) continue;
      out[f.name] = isMessageField(f)
        ? v.map((x) => canonical(f.resolvedType, x, keep))
        : v.map((x) => scalarToJson(f, x));
      continue;
    }
    if (isMessageField(f)) {
      out[f.name] = canonical(f.resolvedType, v, keep);
      continue;
    }
    if (!f.partOf && isDefaultScalar(f, v)) continue;
    out[f.name] = scalarToJson(f, v);
  }
  return out;
}

/** Agent message instance -> canonical JSON of the fields the agent knows. */
function fromAgent(type, msg) {
  const out = {};
  for (const f of type.fieldsArray) {
    if (!agentKnowsField(type, f)) continue;
    const stem = jsName(f.name);
    if (f.repeated) {
      let list;
      if (f.type === 'bytes') list = msg[`get${stem}List_asB64`]();
      else list = msg[`get${stem}List`]();
      if (!list.length) continue;
      out[f.name] = isMessageField(f)
        ? list.map((x) => fromAgent(f.resolvedType, x))
        : list.map((x) => scalarToJson(f, x));
      continue;
    }
    if (isMessageField(f)) {
      if (msg[`has${stem}`]()) out[f.name] = fromAgent(f.resolvedType, msg[`get${stem}`]());
      continue;
    }
    const v = f.type === 'bytes' ? msg[`get${stem}_asB64`]() : msg[`get${stem}`]();
    if (f.partOf) {
      if (msg[`has${stem}`]()) out[f.name] = scalarToJson(f, v);
      continue;
    }
    if (!isDefaultScalar(f, v)) out[f.name] = scalarToJson(f, v);
  }
  return out;
}

function scalarToAgent(type, f, v) {
  if (isLongField(f)) return agentLongIsExact(type, f) ? String(v) : Number(v);
  if (isEnumField(f)) return typeof v === 'number' ? v : f.resolvedType.values[v];
  if (f.type === 'bytes') return new Uint8Array(Buffer.from(v, 'base64'));
  return v;
}

/**
 * JSON-form object -> agent message instance. Fields the agent does not know
 * are skipped.
 */
function toAgent(type, obj) {
  const Cls = classFor(type);
  if (!Cls) throw new Error(`pinpoint-node-agent has no class for ${fullName(type)}`);
  const msg = new Cls();
  for (const f of type.fieldsArray) {
    const v = obj[f.name];
    if (v === undefined || v === null) continue;
    if (!agentKnowsField(type, f)) continue;
    const stem = jsName(f.name);
    if (f.repeated) {
      if (!v.length) continue;
      const list = isMessageField(f)
        ? v.map((x) => toAgent(f.resolvedType, x))
        : v.map((x) => scalarToAgent(type, f, x));
      msg[`set${stem}List`](list);
    } else if (isMessageField(f)) {
      msg[`set${stem}`](toAgent(f.resolvedType, v));
    } else {
      msg[`set${stem}`](scalarToAgent(type, f, v));
    }
  }
  return msg;
}

module.exports = {
  AGENT_GRPC_DIR,
  modules,
  services,
  classes,
  classFor,
  jsName,
  fullName,
  agentKnowsField,
  agentFieldNumber,
  agentLongIsExact,
  agentWireLayout,
  canonical,
  fromAgent,
  toAgent,
  isMessageField,
  isEnumField,
  isLongField,
};
