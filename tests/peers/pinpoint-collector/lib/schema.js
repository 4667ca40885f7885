'use strict';
// Loads the project's own Pinpoint .proto files (proto/pinpoint at the repo
// root) with protobufjs, and converts decoded messages to plain JSON.
//
// JSON form used everywhere in this folder (recordings, the call-tree
// checker, the tests): field names exactly as in the .proto files, 64-bit
// integers as decimal strings (exact), bytes as base64, enums as names,
// every non-oneof field present (defaults included, unset messages = null),
// and each oneof's name as a virtual property naming the member that is set
// (e.g. PSpanMessage has "field": "span").

const path = require('node:path');
const protobuf = require('protobufjs');

const DEFAULT_PROTO_DIR = path.resolve(__dirname, '..', '..', '..', '..', 'proto', 'pinpoint');

const JSON_OPTIONS = Object.freeze({
  longs: String,
  enums: String,
  bytes: String,
  defaults: true,
  arrays: true,
  oneofs: true,
});

const cache = new Map();

/**
 * Loads service.proto (and everything it imports) from `protoDir`.
 * The google/protobuf imports come from protobufjs's bundled well-known types.
 * @param {string} [protoDir]
 * @returns {protobuf.Root}
 */
function loadRoot(protoDir = process.env.PINPOINT_PROTO_DIR || DEFAULT_PROTO_DIR) {
  const dir = path.resolve(protoDir);
  if (cache.has(dir)) return cache.get(dir);
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) =>
    target.startsWith('google/protobuf/') ? target : path.resolve(dir, target);
  root.loadSync('service.proto', { keepCase: true });
  root.resolveAll();
  cache.set(dir, root);
  return root;
}

/** All message types declared in package v1, by short name. */
function v1Types(root) {
  const out = new Map();
  const ns = root.lookup('v1');
  for (const nested of ns.nestedArray) {
    if (nested instanceof protobuf.Type) out.set(nested.name, nested);
  }
  return out;
}

/** Decoded protobufjs message -> plain JSON (see the header comment). */
function toJson(type, message) {
  return type.toObject(message, JSON_OPTIONS);
}

/** Bytes -> plain JSON with our schema. Throws on malformed input. */
function decodeToJson(type, bytes) {
  return toJson(type, type.decode(bytes));
}

/** Plain object (our field names) -> wire bytes with our schema. */
function encodeFromObject(type, obj) {
  return Buffer.from(type.encode(type.fromObject(obj)).finish());
}

module.exports = {
  DEFAULT_PROTO_DIR,
  JSON_OPTIONS,
  loadRoot,
  v1Types,
  toJson,
  decodeToJson,
  encodeFromObject,
};
