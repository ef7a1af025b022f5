#!/usr/bin/env node
'use strict';
/**
 * Conformance driver for jobstream-producer.js (conformance/README.md,
 * "Producer cases").
 *
 * The runner starts it with REDIS_URL, JOBSTREAM_QUEUE, JOBSTREAM_CASES (the
 * path of conformance/v1/producer.json) and JOBSTREAM_SCRIPTS (the scripts/
 * folder). It enqueues every case's jobs in file order (a case with several
 * jobs in one `enqueueMany` call) and prints one JSON line per case:
 *
 *     {"case":"with_id","ids":["conf-fixed-1"]}
 *     {"case":"unique_again","ids":[],"duplicate":true,"holder":"conf-unique-1"}
 *
 * A case the library refuses prints {"case": ..., "error": "..."}; the
 * driver then exits 1 after the last case.
 *
 *     npm ci --prefix examples/node
 *     jobstream-conformance producer --url redis://127.0.0.1:6379 -- node examples/node/conformance-driver.js
 */

const fs = require('node:fs');
const Redis = require('ioredis');
const { Producer } = require('./jobstream-producer');

/**
 * A case's snake_case options as the library's camelCase ones. The
 * protocol's deadline_in_ms counts from the server's time at enqueue; the
 * library's deadlineInMs from when the job is due (as the Rust producer's
 * start_within), so a delayed job's is shifted by its delay.
 */
function camel(options = {}) {
  const out = Object.fromEntries(Object.entries(options).map(([k, v]) => [
    k === 'fields' ? k : k.replace(/_([a-z])/g, (_, c) => c.toUpperCase()), v]));
  if (out.deadlineInMs != null && out.delayMs) out.deadlineInMs -= out.delayMs;
  return out;
}

async function main() {
  const env = process.env;
  const redis = new Redis(env.REDIS_URL || 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 1 });
  const producer = new Producer(redis, { scriptsDir: env.JOBSTREAM_SCRIPTS });
  const queue = env.JOBSTREAM_QUEUE;
  const { cases } = JSON.parse(fs.readFileSync(env.JOBSTREAM_CASES, 'utf8'));
  let failed = false;
  for (const c of cases) {
    let out;
    try {
      let results;
      if (c.enqueue.length === 1) {
        const [j] = c.enqueue;
        results = [await producer.enqueue(queue, j.type, j.payload, camel(j.options))];
      } else {
        results = await producer.enqueueMany(queue, c.enqueue.map((j) => ({ type: j.type, payload: j.payload, ...camel(j.options) })));
      }
      out = { case: c.name, ids: results.filter((r) => !r.duplicate).map((r) => r.id) };
      const dup = results.find((r) => r.duplicate);
      if (dup) Object.assign(out, { duplicate: true, holder: dup.holder });
    } catch (e) {
      failed = true;
      out = { case: c.name, error: String(e.message || e) };
    }
    process.stdout.write(JSON.stringify(out) + '\n');
  }
  await redis.quit();
  return failed ? 1 : 0;
}

main().then((code) => { process.exitCode = code; }, (e) => { console.error(e); process.exitCode = 2; });
