'use strict';
// Deterministic, fully populated sample messages for wire tests, generated
// from our protobufjs schema. Sample number k picks oneof member
// k mod (members), so k = 0..maxOneofSize-1 covers every oneof member.
// Values are chosen to exercise wire types: negative int32/sint32 (10-byte
// varints vs zigzag), 32-bit extremes, 64-bit extremes where the reader can
// hold them, non-integer doubles, multi-byte UTF-8, bytes with 0x00/0xff.

const protobuf = require('protobufjs');

const INT32 = [-7, 2147483647, -2147483648, 123456, -1];
const LONG_EXACT = ['-8914616934935285348', '9223372036854775807', '-9223372036854775808', '790211418057950173', '-1'];
// Exactly representable as a JS number (for readers that keep int64 as number).
const LONG_SAFE = ['-9007199254740991', '9007199254740991', '-1234567890123', '1700000000000', '-1'];
const DOUBLES = [-1.5, 0.25, 1e300, -3.0517578125e-5, 42.125];

function pick(list, n) {
  return list[((n % list.length) + list.length) % list.length];
}

/**
 * @param {protobuf.Type} type
 * @param {number} k sample number
 * @param {object} [opts]
 * @param {(type: protobuf.Type, f: protobuf.Field) => boolean} [opts.exactLong]
 *   whether 64-bit field f may carry values beyond 2^53 (default: always)
 * @param {number} [opts.maxDepth] recursion limit for self-referencing types
 * @returns {object} JSON-form object (see lib/schema.js), longs as strings
 */
function sample(type, k, opts = {}, depth = 0) {
  const exactLong = opts.exactLong || (() => true);
  const maxDepth = opts.maxDepth ?? 5;
  const chosen = new Set(type.oneofsArray.map((o) => pick(o.fieldsArray, k).name));
  const obj = {};
  for (const f of type.fieldsArray) {
    if (f.partOf && !chosen.has(f.name)) continue;
    if (f.resolvedType instanceof protobuf.Type) {
      if (depth >= maxDepth) continue;
      obj[f.name] = f.repeated
        ? [sample(f.resolvedType, k, opts, depth + 1), sample(f.resolvedType, k + 1, opts, depth + 1)]
        : sample(f.resolvedType, k, opts, depth + 1);
      continue;
    }
    const one = (i) => scalar(type, f, k + i, exactLong(type, f));
    obj[f.name] = f.repeated ? [one(0), one(1), one(2)] : one(0);
  }
  return obj;
}

function scalar(type, f, n, exact) {
  const salt = n + f.id;
  if (f.resolvedType instanceof protobuf.Enum) {
    const names = Object.keys(f.resolvedType.values).filter((v) => f.resolvedType.values[v] !== 0);
    return pick(names, salt);
  }
  switch (f.type) {
    case 'int32': case 'sint32': case 'sfixed32':
      return pick(INT32, salt);
    case 'int64': case 'sint64': case 'sfixed64':
      return pick(exact ? LONG_EXACT : LONG_SAFE, salt);
    case 'uint32': case 'fixed32':
      return 4000000000 - salt;
    case 'uint64': case 'fixed64':
      return exact ? '18446744073709551615' : '9007199254740991';
    case 'double': case 'float':
      return pick(DOUBLES, salt);
    case 'bool':
      // false only where presence is explicit (a oneof member)
      return f.partOf ? n % 3 !== 2 : true;
    case 'string':
      return `${f.name}-${n}-ü漢字🚀^x`;
    case 'bytes':
      return Buffer.from([0, 255, n & 0xff, f.id & 0xff, 0x80]).toString('base64');
    default:
      throw new Error(`no sample value for ${type.name}.${f.name} (${f.type})`);
  }
}

/** Largest oneof (by member count) reachable from `type`. */
function maxOneofSize(type, seen = new Set()) {
  if (seen.has(type)) return 1;
  seen.add(type);
  let max = Math.max(1, ...type.oneofsArray.map((o) => o.fieldsArray.length));
  for (const f of type.fieldsArray) {
    if (f.resolvedType instanceof protobuf.Type) max = Math.max(max, maxOneofSize(f.resolvedType, seen));
  }
  return max;
}

module.exports = { sample, maxOneofSize };
