'use strict';
// Strict structural check of protobuf bytes against our schema, run before
// any decoder sees request bytes.
//
// Why: google-protobuf's JS reader can loop forever on some malformed input
// (e.g. a length prefix past the end of the buffer), and protobufjs accepts
// some lengths it should reject. The real collector (protobuf-java) throws
// on these, so the stand-in answers them with an error instead.
//
// Rejects: truncated or over-long varints, lengths past the end, group wire
// types, field number 0, a wire type that does not fit a known field,
// invalid UTF-8 in string fields, and nesting deeper than 100.
// Unknown fields are skipped, as every protobuf reader does.

const protobuf = require('protobufjs');

const utf8 = new TextDecoder('utf-8', { fatal: true });
const MAX_DEPTH = 100;

const VARINT_TYPES = new Set(['int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64', 'bool']);
const FIXED64_TYPES = new Set(['fixed64', 'sfixed64', 'double']);
const FIXED32_TYPES = new Set(['fixed32', 'sfixed32', 'float']);

class WireError extends Error {}

function readVarint(buf, pos) {
  for (let i = 0; i < 10; i++) {
    if (pos + i >= buf.length) throw new WireError(`truncated varint at byte ${pos}`);
    const b = buf[pos + i];
    if (i === 9 && b > 1) throw new WireError(`varint longer than 64 bits at byte ${pos}`);
    if ((b & 0x80) === 0) {
      // value only needed for tags and lengths, which must fit 32 bits
      let v = 0;
      for (let j = i; j >= 0; j--) v = v * 128 + (buf[pos + j] & 0x7f);
      return [v, pos + i + 1];
    }
  }
  throw new WireError(`varint longer than 10 bytes at byte ${pos}`);
}

function expectedWireType(field) {
  if (field.resolvedType instanceof protobuf.Type) return 2;
  if (field.resolvedType instanceof protobuf.Enum) return 0;
  if (field.type === 'string' || field.type === 'bytes') return 2;
  if (VARINT_TYPES.has(field.type)) return 0;
  if (FIXED64_TYPES.has(field.type)) return 1;
  if (FIXED32_TYPES.has(field.type)) return 5;
  return undefined;
}

function checkPacked(buf, field, where) {
  const wt = expectedWireType(field);
  let pos = 0;
  while (pos < buf.length) {
    if (wt === 0) [, pos] = readVarint(buf, pos);
    else if (wt === 1) pos += 8;
    else if (wt === 5) pos += 4;
    if (pos > buf.length) throw new WireError(`${where}: truncated packed value`);
  }
}

function check(type, buf, depth, where) {
  if (depth > MAX_DEPTH) throw new WireError(`${where}: nesting deeper than ${MAX_DEPTH}`);
  let pos = 0;
  while (pos < buf.length) {
    let tag;
    [tag, pos] = readVarint(buf, pos);
    const number = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (number === 0 || number > 536870911) throw new WireError(`${where}: invalid field number ${number}`);
    const field = type && type.fieldsById[number];
    const name = field ? `${where}.${field.name}` : `${where}.#${number}`;
    switch (wireType) {
      case 0: [, pos] = readVarint(buf, pos); break;
      case 1: pos += 8; break;
      case 5: pos += 4; break;
      case 2: {
        let len;
        [len, pos] = readVarint(buf, pos);
        if (len > buf.length - pos) throw new WireError(`${name}: length ${len} past the end of the message`);
        const body = buf.subarray(pos, pos + len);
        pos += len;
        if (field) {
          if (field.resolvedType instanceof protobuf.Type) check(field.resolvedType, body, depth + 1, name);
          else if (field.type === 'string') {
            try { utf8.decode(body); } catch { throw new WireError(`${name}: invalid UTF-8`); }
          } else if (field.repeated && expectedWireType(field) !== 2) checkPacked(body, field, name);
        }
        break;
      }
      default:
        throw new WireError(`${name}: unsupported wire type ${wireType}`);
    }
    if (pos > buf.length) throw new WireError(`${name}: truncated value`);
    if (field) {
      const want = expectedWireType(field);
      const packedOk = field.repeated && wireType === 2 && want !== 2;
      if (want !== undefined && wireType !== want && !packedOk) {
        throw new WireError(`${name}: wire type ${wireType}, expected ${want}`);
      }
    }
  }
}

/**
 * Throws a WireError when `bytes` is not a well-formed encoding of `type`.
 * @param {protobuf.Type} type
 * @param {Uint8Array} bytes
 */
function checkWire(type, bytes) {
  check(type, bytes, 0, type.name);
}

module.exports = { checkWire, WireError };
