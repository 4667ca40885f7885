#!/usr/bin/env node
// Decodes one pprof profile (raw or gzip) with pprof-format and prints it as JSON with
// every string-table index resolved, so a test can compare it field by field:
//   node decode.js profile.pb
// Output: { sampleType, periodType, period, timeNanos, durationNanos, defaultSampleType,
//           samples: [{ locations: [id], frames: ["fn@file:line"], values, labels }],
//           locations: [{ id, mapping, address, lines: ["fn@file:line"] }],
//           mappings: [{ id, start, limit, offset, file, hasFunctions, ... }] }
'use strict';

const fs = require('node:fs');
const zlib = require('node:zlib');
const { Profile } = require('pprof-format');

let bytes = fs.readFileSync(process.argv[2]);
if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = zlib.gunzipSync(bytes);
const p = Profile.decode(new Uint8Array(bytes));

const num = (v) => Number(v);
const str = (i) => {
  const s = p.stringTable.strings[num(i)];
  if (s === undefined) throw new Error(`string index ${i} out of range`);
  return s;
};
const vt = (v) => (v ? { type: str(v.type), unit: str(v.unit) } : null);
const functions = new Map(p.function.map((f) => [num(f.id), f]));
const frame = (line) => {
  const f = functions.get(num(line.functionId));
  if (!f) throw new Error(`function ${line.functionId} missing`);
  return `${str(f.name)}@${str(f.filename)}:${num(line.line)}`;
};
const locations = new Map(p.location.map((l) => [num(l.id), l]));

const out = {
  sampleType: p.sampleType.map(vt),
  periodType: vt(p.periodType),
  period: num(p.period),
  timeNanos: String(p.timeNanos),
  durationNanos: num(p.durationNanos),
  defaultSampleType: str(p.defaultSampleType),
  samples: p.sample.map((s) => ({
    locations: s.locationId.map(num),
    frames: s.locationId.flatMap((id) => {
      const l = locations.get(num(id));
      if (!l) throw new Error(`location ${id} missing`);
      return l.line.map(frame);
    }),
    values: s.value.map(num),
    labels: Object.fromEntries(
      s.label.map((l) => [
        str(l.key),
        num(l.str) !== 0 ? str(l.str) : `${num(l.num)}${str(l.numUnit)}`,
      ]),
    ),
  })),
  locations: p.location.map((l) => ({
    id: num(l.id),
    mapping: num(l.mappingId),
    address: num(l.address),
    lines: l.line.map(frame),
  })),
  mappings: p.mapping.map((m) => ({
    id: num(m.id),
    start: num(m.memoryStart),
    limit: num(m.memoryLimit),
    offset: num(m.fileOffset),
    file: str(m.filename),
    hasFunctions: Boolean(m.hasFunctions),
    hasFilenames: Boolean(m.hasFilenames),
    hasLineNumbers: Boolean(m.hasLineNumbers),
    hasInlineFrames: Boolean(m.hasInlineFrames),
  })),
};
process.stdout.write(JSON.stringify(out));
