'use strict';
// Worker for test/fuzz.test.js: runs the collector's two decoders on byte
// strings that passed the wire check, reporting progress so that the parent
// can name the case if a decoder hangs. Decode errors are fine; hangs are not.

const { parentPort, workerData } = require('node:worker_threads');
const schema = require('./schema');
const agent = require('./agent-pb');

const types = schema.v1Types(schema.loadRoot());
let done = 0;
for (const [i, job] of workerData.jobs.entries()) {
  parentPort.postMessage({ progress: i });
  const bytes = Buffer.from(job.hex, 'hex');
  const type = types.get(job.name);
  try { agent.classFor(type).deserializeBinary(new Uint8Array(bytes)); } catch { /* rejected: fine */ }
  try { schema.decodeToJson(type, bytes); } catch { /* rejected: fine */ }
  done += 1;
}
parentPort.postMessage({ done });
