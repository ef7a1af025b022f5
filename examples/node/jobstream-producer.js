'use strict';
/**
 * A jobstream producer for Node.js: enqueue jobs with ioredis and
 * @msgpack/msgpack only.
 *
 * It writes wire format v1 (docs/wire-format.md) like the Rust producer, so
 * any jobstream worker runs the jobs (one difference: `enqueued_at` on every
 * job, the Rust producer writes it only on delayed ones):
 *
 *     const Redis = require('ioredis');
 *     const { Producer } = require('./jobstream-producer');
 *
 *     const producer = new Producer(new Redis('redis://127.0.0.1:6379'));
 *     await producer.enqueue('emails', 'send_email', { to: 'a@example.com' });      // now
 *     await producer.enqueue('emails', 'send_email', { to: 'b@example.com' }, { delayMs: 30000 });
 *     const r = await producer.enqueue('emails', 'sync', { account: 42 }, { uniqueKey: 'account-42' });
 *     if (r.duplicate) console.log('already queued as', r.holder);
 *     await producer.enqueueMany('emails', [                                     // one round trip
 *       { type: 'send_email', payload: { to: 'c@example.com' } },
 *       { type: 'send_email', payload: { to: 'd@example.com' }, delayMs: 1000 },
 *     ]);
 *
 * What it writes, per job:
 * - to run now: `XADD PREFIX:{Q}:ready * type T payload P id ID enqueued_at MS ...`;
 * - delayed: `ZADD PREFIX:{Q}:scheduled DUE MEMBER`, MEMBER a MessagePack map
 *   of the same fields (str keys, str values, `payload` as bin);
 * - with a uniqueness key (or a record): `EVALSHA` of `scripts/enqueue-6.lua`,
 *   which reserves the key and adds the job in one atomic step;
 * - and `SADD PREFIX:queues Q` (its own command: no hash tag).
 *
 * Ids are UUIDv7 (RFC 9562), made before anything is sent, like the Rust
 * producer's. Times (`enqueued_at`, due times, deadlines) come from the
 * Redis server's clock (`TIME`, read at most once a minute and extended
 * with this process's monotonic clock). Payloads are encoded with
 * `encode(payload)` of @msgpack/msgpack (objects keep their keys,
 * Uint8Array/Buffer become bin). docs/wire-format.md sets no payload size
 * limit, so none is checked unless `maxPayloadBytes` is given.
 *
 * Why ioredis (not node-redis): its pipeline reports each command's error
 * on its own (`[[err, reply], ...]`), so `enqueueMany` can resend exactly
 * the EVALSHA calls refused with NOSCRIPT and report a partial failure,
 * and Buffers are sent as binary arguments without any configuration.
 */

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { encode } = require('@msgpack/msgpack');

/** Queue names: 1 to 128 of A-Z a-z 0-9 _ - . : (docs/wire-format.md). */
const QUEUE_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;

/** Field names of wire format v1: a job's extra `fields` may not use them. */
const RESERVED_FIELDS = new Set(`
  type payload id attempt enqueued_at max_attempts timeout_ms idempotency_key
  traceparent tracestate last_error_class last_error deadline_ms on_deadline
  unique_key unique_for unique_ttl_ms record_ms chain prev_result batch
  batch_done group rate_key prev_entry reason error_class error deliveries
  failed_at worker queue raw wire_version`.split(/\s+/).filter(Boolean));

const MAX_FIELDS = 1000;             // fields per job
const MAX_ID_LEN = 256;              // bytes, as the Rust producer's NewJob::with_id
const MAX_UNIQUE_KEY_LEN = 256;      // bytes
const MAX_ATTEMPTS = 1000;           // workers cap max_attempts here
const MAX_TIMEOUT_MS = 86400000;     // 24 h, workers cap timeout_ms here
const MAX_LIFETIME_MS = 1e15 - 1;    // enqueue-6 refuses longer lifetimes
const CLOCK_RESYNC_MS = 60000;       // how long a reading of the server clock is trusted
const UNIQUE_MODES = ['queued', 'done', 'ttl'];
const DEADLINE_ACTIONS = ['dead', 'discard'];

/** The options a job may carry (camelCase), for `enqueueMany`. */
const OPTIONS = new Set(['id', 'delayMs', 'runAtMs', 'uniqueKey', 'uniqueFor', 'uniqueTtlMs',
  'deadlineMs', 'deadlineInMs', 'onDeadline', 'maxAttempts', 'timeoutMs', 'idempotencyKey',
  'recordMs', 'fields']);

/** Throws a TypeError unless `queue` is a valid queue name. */
function checkQueueName(queue) {
  if (typeof queue !== 'string' || !QUEUE_NAME.test(queue)) {
    throw new TypeError(`invalid queue name ${JSON.stringify(queue)}: 1 to 128 characters of ` +
      'A-Z a-z 0-9 _ - . : (no braces, spaces or non-ASCII)');
  }
}

/**
 * A UUIDv7 string (RFC 9562): 48 bits of unix ms, version 7, 74 random
 * bits, variant 10. Time-ordered across milliseconds.
 */
function uuid7(unixMs = Date.now()) {
  const b = crypto.randomBytes(16);
  b.writeUIntBE(unixMs, 0, 6);
  b[6] = 0x70 | (b[6] & 0x0f);
  b[8] = 0x80 | (b[8] & 0x3f);
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Enqueues jobstream jobs through an ioredis client (`Redis` or
 * `Cluster`).
 *
 * Options: `prefix` (`jobstream`), `scriptsDir` (the folder holding
 * `enqueue-6.lua`; default the repository's `scripts/`, relative to this
 * file; read on the first unique job), `maxPayloadBytes` (refuse larger
 * encoded payloads; default: no limit).
 */
class Producer {
  constructor(redis, { prefix = 'jobstream', scriptsDir, maxPayloadBytes } = {}) {
    if (!prefix) throw new TypeError('prefix must not be empty');
    this.redis = redis;
    this.prefix = prefix;
    this.scriptsDir = scriptsDir || path.join(__dirname, '..', '..', 'scripts');
    this.maxPayloadBytes = maxPayloadBytes;
    this._script = null; // { sha, source } of enqueue-6
    this._clock = null;  // { serverMs, at } of the last TIME (at: monotonic ms)
  }

  /** The key `PREFIX:{queue}:name`; `{queue}` is the Redis Cluster hash tag. */
  key(queue, name) {
    return `${this.prefix}:{${queue}}:${name}`;
  }

  /**
   * The Redis server's clock, unix ms: read with `TIME` at most once a
   * minute, extended with the monotonic clock in between.
   */
  async serverNowMs() {
    let mono = monotonicMs();
    if (!this._clock || mono - this._clock.at >= CLOCK_RESYNC_MS) {
      const start = monotonicMs();
      const [sec, usec] = await this.redis.time();
      const end = monotonicMs();
      this._clock = { serverMs: Number(sec) * 1000 + Math.floor(Number(usec) / 1000), at: (start + end) / 2 };
      mono = monotonicMs();
    }
    return this._clock.serverMs + Math.floor(mono - this._clock.at);
  }

  /**
   * Enqueues one job of type `jobType` on `queue`. Resolves to
   * `{ id, duplicate, holder, entryId, dueMs }`: `id` the job's id;
   * `duplicate` true (and `holder` the id of the job holding the key) when
   * its uniqueness key was held and nothing was enqueued; `entryId` the
   * `ready` entry id of a job added with a plain XADD; `dueMs` the due time
   * of a delayed job. Throws a TypeError/RangeError for a bad argument
   * (nothing sent) and Redis errors as they are.
   *
   * Options:
   * - `id`: the job's id (1-256 bytes, unique within the queue); default a UUIDv7.
   * - `delayMs` (from now) or `runAtMs` (unix ms): run later, by the server's
   *   clock; a due time not in the future runs now.
   * - `uniqueKey` (1-256 bytes): enqueue nothing while another job of the
   *   queue holds it. `uniqueFor`: `done` (default: released when the job is
   *   final), `queued` (when a worker starts it), `ttl` (after `uniqueTtlMs`,
   *   required then; an optional safety limit otherwise).
   * - `deadlineMs` (unix ms) or `deadlineInMs` (from when the job is due, by
   *   the server's clock; may be negative): not started by then, it is not
   *   run. `onDeadline`: `dead` (reason `expired`, the worker's default) or
   *   `discard` (dropped, counted in `expired`).
   * - `maxAttempts` (1-1000), `timeoutMs` (1-86400000): per-job overrides.
   * - `idempotencyKey`: your business key, handed to the handler.
   * - `recordMs`: keep a job record this long after the job is final.
   * - `fields`: extra fields (name -> string, Buffer/Uint8Array or integer),
   *   carried unchanged through retries and into `dead`.
   */
  async enqueue(queue, jobType, payload, options = {}) {
    const [result] = await this.enqueueMany(queue, [{ ...options, type: jobType, payload }]);
    return result;
  }

  /**
   * Enqueues many jobs on `queue` in one pipeline (one round trip, plus a
   * `TIME` at most once a minute). Each job is `{ type, payload, ...options }`
   * (options as for `enqueue`, or under `options`). Every job is checked
   * before anything is sent. Resolves to one result per job, in order.
   * Not a transaction: if Redis refuses one command, the others still ran;
   * the first error is thrown after the whole pipeline ran.
   */
  async enqueueMany(queue, jobs) {
    checkQueueName(queue);
    const specs = jobs.map(specOf);
    if (specs.length === 0) return [];
    const now = await this.serverNowMs();
    const prepared = specs.map((spec) => this._prepare(spec, now));
    const pipe = this.redis.pipeline();
    pipe.sadd(`${this.prefix}:queues`, queue);
    for (const job of prepared) this._send(pipe, queue, job, now);
    const replies = (await pipe.exec()).slice(1);
    // enqueue-6 not in the server's script cache (first use, a restarted
    // server): load it and resend those calls only; a refused EVALSHA
    // changed nothing.
    const missing = replies.map((r, i) => (isNoScript(r[0]) ? i : -1)).filter((i) => i >= 0);
    if (missing.length) {
      await this.redis.script('LOAD', this._enqueueScript().source);
      const again = this.redis.pipeline();
      for (const i of missing) this._send(again, queue, prepared[i], now);
      (await again.exec()).forEach((r, k) => { replies[missing[k]] = r; });
    }
    const failed = replies.find(([err]) => err);
    if (failed) throw failed[0];
    return prepared.map((job, i) => resultOf(job, replies[i][1]));
  }

  /** Checks one job and builds its fields, in the Rust producer's order. */
  _prepare(s, now) {
    const jobType = s.type;
    if (typeof jobType !== 'string' || jobType === '') throw new TypeError('type must be a non-empty string');
    const payload = toBuffer(encode(s.payload === undefined ? null : s.payload));
    if (this.maxPayloadBytes != null && payload.length > this.maxPayloadBytes) {
      throw new RangeError(`payload is ${payload.length} bytes, over maxPayloadBytes (${this.maxPayloadBytes})`);
    }
    let id = s.id;
    if (id == null) id = uuid7();
    else if (typeof id !== 'string' || Buffer.byteLength(id) < 1 || Buffer.byteLength(id) > MAX_ID_LEN) {
      throw new TypeError(`id must be a string of 1 to ${MAX_ID_LEN} bytes`);
    }

    if (s.delayMs != null && s.runAtMs != null) throw new TypeError('give delayMs or runAtMs, not both');
    let due = now;
    if (s.delayMs != null) due = now + int('delayMs', s.delayMs, 0, MAX_LIFETIME_MS);
    else if (s.runAtMs != null) due = Math.max(now, int('runAtMs', s.runAtMs, 0, MAX_LIFETIME_MS));

    const fields = [['type', jobType], ['payload', payload], ['id', id], ['enqueued_at', String(now)]];
    if (s.maxAttempts != null) fields.push(['max_attempts', String(int('maxAttempts', s.maxAttempts, 1, MAX_ATTEMPTS))]);
    if (s.timeoutMs != null) fields.push(['timeout_ms', String(int('timeoutMs', s.timeoutMs, 1, MAX_TIMEOUT_MS))]);
    if (s.idempotencyKey != null) {
      if (typeof s.idempotencyKey !== 'string' || !s.idempotencyKey) throw new TypeError('idempotencyKey must be a non-empty string');
      fields.push(['idempotency_key', s.idempotencyKey]);
    }

    let unique = null;
    if (s.uniqueKey == null) {
      if (s.uniqueFor != null || s.uniqueTtlMs != null) throw new TypeError('uniqueFor and uniqueTtlMs need a uniqueKey');
    } else {
      const key = s.uniqueKey;
      if (typeof key !== 'string' || Buffer.byteLength(key) < 1 || Buffer.byteLength(key) > MAX_UNIQUE_KEY_LEN) {
        throw new TypeError(`uniqueKey must be a string of 1 to ${MAX_UNIQUE_KEY_LEN} bytes`);
      }
      const mode = s.uniqueFor == null ? 'done' : s.uniqueFor;
      if (!UNIQUE_MODES.includes(mode)) throw new TypeError(`uniqueFor must be one of ${UNIQUE_MODES.join(', ')}`);
      if (mode === 'ttl' && s.uniqueTtlMs == null) throw new TypeError("uniqueFor 'ttl' needs uniqueTtlMs");
      const ttl = s.uniqueTtlMs == null ? 0 : int('uniqueTtlMs', s.uniqueTtlMs, 1, MAX_LIFETIME_MS);
      fields.push(['unique_key', key], ['unique_for', mode]);
      if (ttl) fields.push(['unique_ttl_ms', String(ttl)]);
      unique = { key, mode, ttl };
    }
    let recordMs = 0;
    if (s.recordMs != null) {
      recordMs = int('recordMs', s.recordMs, 1, MAX_LIFETIME_MS);
      fields.push(['record_ms', String(recordMs)]);
    }

    if (s.deadlineMs != null && s.deadlineInMs != null) throw new TypeError('give deadlineMs or deadlineInMs, not both');
    let deadline = null;
    if (s.deadlineInMs != null) deadline = due + int('deadlineInMs', s.deadlineInMs, -MAX_LIFETIME_MS, MAX_LIFETIME_MS);
    else if (s.deadlineMs != null) deadline = int('deadlineMs', s.deadlineMs, 0, MAX_LIFETIME_MS);
    if (s.onDeadline != null) {
      if (!DEADLINE_ACTIONS.includes(s.onDeadline)) throw new TypeError("onDeadline must be 'dead' or 'discard'");
      if (deadline == null) throw new TypeError('onDeadline needs deadlineMs or deadlineInMs');
    }
    if (deadline != null) {
      fields.push(['deadline_ms', String(Math.max(deadline, 0))]);
      if (s.onDeadline != null) fields.push(['on_deadline', s.onDeadline]);
    }

    for (const [name, value] of Object.entries(s.fields || {})) {
      if (!name || RESERVED_FIELDS.has(name)) throw new TypeError(`field name ${JSON.stringify(name)} is empty or reserved by the wire format`);
      if (typeof value === 'string') fields.push([name, value]);
      else if (value instanceof Uint8Array) fields.push([name, toBuffer(value)]);
      else if (Number.isSafeInteger(value)) fields.push([name, String(value)]);
      else throw new TypeError(`field ${JSON.stringify(name)} must be a string, a Buffer/Uint8Array or an integer`);
    }
    if (fields.length > MAX_FIELDS) throw new RangeError(`a job has at most ${MAX_FIELDS} fields (${fields.length} here)`);
    return { id, jobType, fields, dueMs: due > now ? due : null, unique, recordMs };
  }

  /** Adds the command that enqueues `job` to `pipe`. */
  _send(pipe, queue, job, now) {
    const flat = job.fields.flat();
    if (!job.unique && !job.recordMs) {
      if (job.dueMs == null) pipe.xadd(this.key(queue, 'ready'), '*', ...flat);
      else pipe.zadd(this.key(queue, 'scheduled'), job.dueMs, member(job.fields));
      return;
    }
    const { key, mode, ttl } = job.unique || { key: null, mode: '', ttl: 0 };
    const keys = [this.key(queue, 'ready'), this.key(queue, 'scheduled'), this.key(queue, 'stats'),
      // Any key of the queue when there is no uniqueness key.
      key == null ? this.key(queue, 'ready') : this.key(queue, `unique:${key}`),
      this.key(queue, `job:${job.id}`), this.key(queue, `done:${job.id}`)];
    const args = [job.id, mode, ttl, job.recordMs, now, job.dueMs || 0, job.jobType];
    if (job.dueMs == null) args.push(...flat);
    else args.push(member(job.fields));
    pipe.evalsha(this._enqueueScript().sha, keys.length, ...keys, ...args);
  }

  /** `{ sha, source }` of `enqueue-6.lua`, read once. */
  _enqueueScript() {
    if (!this._script) {
      const source = fs.readFileSync(path.join(this.scriptsDir, 'enqueue-6.lua'));
      this._script = { sha: crypto.createHash('sha1').update(source).digest('hex'), source };
    }
    return this._script;
  }
}

/** A job of `enqueueMany` as `{ type, payload, ...options }`, checked. */
function specOf(job) {
  if (job === null || typeof job !== 'object') throw new TypeError('a job must be an object');
  const { type, payload, options, ...rest } = job;
  const spec = { ...rest, ...(options || {}) };
  for (const name of Object.keys(spec)) {
    if (!OPTIONS.has(name)) throw new TypeError(`unknown job option: ${name}`);
  }
  return { ...spec, type, payload };
}

function resultOf(job, reply) {
  if (job.unique || job.recordMs) {
    const [code, holder] = reply;
    if (Number(code) === 0) return { id: job.id, duplicate: true, holder: String(holder), entryId: null, dueMs: null };
    return { id: job.id, duplicate: false, holder: null, entryId: null, dueMs: job.dueMs };
  }
  return { id: job.id, duplicate: false, holder: null, entryId: job.dueMs == null ? String(reply) : null, dueMs: job.dueMs };
}

/**
 * A `scheduled` member: a MessagePack map with str keys and str or bin
 * values, in the fields' order (built by hand: a JS object would move
 * integer-like keys first, and @msgpack/msgpack does not encode a Map).
 */
function member(fields) {
  const n = fields.length;
  const head = n < 16 ? Buffer.from([0x80 | n])
    : n < 0x10000 ? Buffer.from([0xde, n >> 8, n & 0xff])
      : Buffer.from([0xdf, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([head, ...fields.flatMap(([k, v]) => [toBuffer(encode(k)), toBuffer(encode(v))])]);
}

function int(name, value, low, high) {
  if (!Number.isSafeInteger(value)) throw new TypeError(`${name} must be an integer`);
  if (value < low || value > high) throw new RangeError(`${name} must be between ${low} and ${high}`);
  return value;
}

function toBuffer(u8) {
  return Buffer.isBuffer(u8) ? u8 : Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

function monotonicMs() {
  return Number(process.hrtime.bigint() / 1000000n);
}

function isNoScript(err) {
  return Boolean(err) && /NOSCRIPT/.test(String(err.message || err));
}

module.exports = { Producer, checkQueueName, uuid7, RESERVED_FIELDS };
