'use strict';
// Mutated messages must never hang or crash the collector's decode path:
// lib/wire-check.js must reject whatever google-protobuf's reader would loop
// on. The decoders run in a worker thread so that a hang fails the test
// instead of stalling it.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { Worker } = require('node:worker_threads');

const schema = require('../lib/schema');
const { sample, maxOneofSize } = require('../lib/samples');
const { checkWire } = require('../lib/wire-check');

const CASES_PER_BASE = 150;

function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mutate(buf, rnd) {
  const b = Buffer.from(buf);
  const at = Math.floor(rnd() * Math.max(1, b.length));
  switch (Math.floor(rnd() * 5)) {
    case 0: b[at] ^= 1 << Math.floor(rnd() * 8); return b;
    case 1: b[at] = 0xff; return b;
    case 2: return b.subarray(0, at);
    case 3: return Buffer.concat([b.subarray(0, at), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]), b.subarray(at)]);
    default: return Buffer.concat([b.subarray(0, at), b.subarray(Math.floor(at / 2))]);
  }
}

test('mutated messages: rejected by the wire check, or decoded by both decoders without hanging', async () => {
  const types = schema.v1Types(schema.loadRoot());
  const rnd = prng(20240611);
  const jobs = [];
  let rejected = 0;
  for (const name of ['PSpanMessage', 'PAgentInfo', 'PStatMessage', 'PApiMetaData']) {
    const type = types.get(name);
    for (let k = 0; k < maxOneofSize(type); k++) {
      const base = schema.encodeFromObject(type, sample(type, k));
      for (let i = 0; i < CASES_PER_BASE / maxOneofSize(type) + 5; i++) {
        const bytes = mutate(base, rnd);
        try {
          checkWire(type, bytes);
          jobs.push({ name, hex: bytes.toString('hex') });
        } catch {
          rejected += 1;
        }
      }
    }
  }
  assert.ok(rejected > 0 && jobs.length > 0, `${rejected} rejected, ${jobs.length} accepted`);

  const worker = new Worker(path.join(__dirname, '..', 'lib', 'fuzz-worker.js'), { workerData: { jobs } });
  let progress = 0;
  const result = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      worker.terminate();
      reject(new Error(`decoder hung on accepted case #${progress}: ${JSON.stringify(jobs[progress])}`));
    }, 20000);
    worker.on('message', (m) => {
      if (m.progress !== undefined) progress = m.progress;
      if (m.done) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    worker.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
  await worker.terminate();
  assert.equal(result.done, jobs.length);
});
