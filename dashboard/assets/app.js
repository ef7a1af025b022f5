// jobstream dashboard: a single page over the JSON API in dashboard/API.md.
//
// Rules this file keeps:
// - Everything from the server is data written by anyone who can write to
//   Redis (job types, ids, errors, payloads): it goes into the page with
//   textContent only, never as HTML.
// - URLs are relative ("api/overview"): the dashboard may be mounted under
//   any path.
// - Every POST carries the CSRF header; every action asks first.
"use strict";

const S = {
  config: null,          // api/config
  timer: null,           // the refresh timer
  lastOk: 0,             // when data last arrived (ms)
  busy: false,           // a dialog is open: no refresh
  view: {},              // per-route state (filters, cursors, selection)
  queues: [],            // names, for the find box
};

// ---------- small helpers ----------

/** An element: h("td", {class: "num"}, "12", otherNode). Strings become text. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = !!v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const svgNS = "http://www.w3.org/2000/svg";
function s(tag, attrs) {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

const enc = encodeURIComponent;
const num = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
const rate = (r) => (r === null || r === undefined ? "–" : (Math.round(r * 10) / 10).toLocaleString("en-US"));

/** "3 min", "2 h 5 min", "12 s", "850 ms". */
function dur(ms) {
  if (ms === null || ms === undefined) return "–";
  ms = Math.max(0, ms);
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const sec = Math.floor(ms / 1000);
  if (sec < 60) return `${sec} s`;
  const min = Math.floor(sec / 60);
  if (min < 60) return `${min} min`;
  const hr = Math.floor(min / 60);
  if (hr < 48) return `${hr} h ${min % 60} min`;
  return `${Math.floor(hr / 24)} d`;
}

function when(ms) {
  if (!ms) return "–";
  const d = new Date(ms);
  const rel = Date.now() - ms;
  const text = rel >= 0 ? `${dur(rel)} ago` : `in ${dur(-rel)}`;
  return h("span", { title: d.toISOString() }, text);
}

function stateBadge(state) {
  const cls = { dead: "bad", "in-flight": "warn", active: "warn", completed: "ok", scheduled: "", ready: "" }[state] || "";
  return h("span", { class: `badge ${cls}`, "data-testid": "job-state" }, state || "–");
}

// ---------- server ----------

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path) {
  let resp;
  try {
    resp = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  } catch (e) {
    throw new HttpError(0, "the dashboard server cannot be reached");
  }
  let body = null;
  try { body = await resp.json(); } catch (_) { body = null; }
  if (resp.status === 401) {
    go("#/login");
    throw new HttpError(401, (body && body.error) || "log in first");
  }
  if (!resp.ok) throw new HttpError(resp.status, (body && body.error) || `HTTP ${resp.status}`);
  return body;
}

async function post(path, body) {
  const resp = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-Jobstream-Csrf": S.config ? S.config.csrf : "" },
    body: JSON.stringify(body || {}),
  });
  let out = null;
  try { out = await resp.json(); } catch (_) { out = null; }
  if (!resp.ok) throw new HttpError(resp.status, (out && out.error) || `HTTP ${resp.status}`);
  return out;
}

// ---------- chrome: flash, banner, confirm ----------

function flash(text, isError) {
  const el = document.querySelector("[data-testid=flash]");
  el.textContent = text;
  el.className = isError ? "flash error" : "flash";
  el.hidden = false;
  clearTimeout(flash.t);
  flash.t = setTimeout(() => { el.hidden = true; }, isError ? 12000 : 6000);
}

function banner(text) {
  const el = document.querySelector("[data-testid=error-banner]");
  el.hidden = !text;
  el.textContent = text ? `${text} (showing the last data; retrying)` : "";
}

/** An in-page confirmation: resolves true when confirmed. */
function confirmAction(text, okLabel) {
  const modal = document.querySelector("[data-testid=confirm]");
  modal.querySelector(".confirm-text").textContent = text;
  const ok = modal.querySelector("[data-testid=confirm-ok]");
  const cancel = modal.querySelector("[data-testid=confirm-cancel]");
  ok.textContent = okLabel || "Confirm";
  modal.hidden = false;
  S.busy = true;
  return new Promise((resolve) => {
    const done = (v) => {
      modal.hidden = true;
      S.busy = false;
      ok.removeEventListener("click", yes);
      cancel.removeEventListener("click", no);
      resolve(v);
    };
    const yes = () => done(true);
    const no = () => done(false);
    ok.addEventListener("click", yes);
    cancel.addEventListener("click", no);
    ok.focus();
  });
}

/** Runs an action after confirmation, then shows its message and refreshes. */
async function act(question, okLabel, path, body) {
  if (question && !(await confirmAction(question, okLabel))) return null;
  try {
    const out = await post(path, body);
    flash(out.message || "done");
    await refresh();
    return out;
  } catch (e) {
    flash(e.status === 401 ? `${e.message}: log in with the token` : e.message, true);
    return null;
  }
}

function actionButton(label, testid, onclick, cls) {
  const can = S.config && S.config.can_act;
  return h("button", {
    "data-testid": testid,
    class: cls || "",
    disabled: !can,
    title: can ? null : (S.config && S.config.read_only_reason) || "read-only",
    onclick,
  }, label);
}

// ---------- routing ----------

function go(hash) {
  if (location.hash !== hash) location.hash = hash;
  else render();
}

function route() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query || "");
  return { parts, params, key: raw };
}

const views = {
  overview: viewOverview,
  queue: viewQueue,
  job: viewJob,
  dead: viewDead,
  deadPick: viewDeadPick,
  workers: viewWorkers,
  schedules: viewSchedules,
  login: viewLogin,
};

function pick(r) {
  const p = r.parts;
  if (p.length === 0) return ["overview"];
  if (p[0] === "login") return ["login"];
  if (p[0] === "workers") return ["workers"];
  if (p[0] === "schedules") return ["schedules"];
  if (p[0] === "dead") return ["deadPick"];
  if (p[0] === "queue" && p[1] && p[2] === "job" && p[3]) return ["job", p[1], p.slice(3).join("/")];
  if (p[0] === "queue" && p[1] && p[2] === "dead") return ["dead", p[1]];
  if (p[0] === "queue" && p[1]) return ["queue", p[1]];
  return ["overview"];
}

/** The view state of the current route (kept across refreshes). */
function vstate(key, init) {
  if (!S.view[key]) S.view[key] = init();
  return S.view[key];
}

let rendering = false;
async function render() {
  if (rendering) return;
  rendering = true;
  const r = route();
  const [name, ...args] = pick(r);
  for (const a of document.querySelectorAll(".top nav a")) {
    a.classList.toggle("active", a.getAttribute("href") === `#/${r.parts[0] || ""}`);
  }
  const main = document.getElementById("main");
  try {
    const node = await views[name](r, ...args);
    if (node) main.replaceChildren(node);
    S.lastOk = Date.now();
    banner("");
  } catch (e) {
    if (e.status === 401 && name !== "login") return;
    if (main.querySelector(".muted") && main.children.length === 1) main.replaceChildren(h("p", { class: "bad" }, e.message));
    else banner(e.message);
  } finally {
    rendering = false;
    stamp();
  }
  // The route changed while this one rendered (a 401 sent us to the
  // login view, a click): render the new one.
  if (route().key !== r.key) await render();
}

/** Refreshes the current view unless someone is typing or deciding. */
async function refresh() {
  const active = document.activeElement;
  const typing = active && ["INPUT", "SELECT", "TEXTAREA"].includes(active.tagName) && active.closest("#main");
  if (S.busy || typing || route().parts[0] === "login") return;
  await render();
}

function stamp() {
  const el = document.querySelector("[data-testid=updated-at]");
  const age = Date.now() - S.lastOk;
  el.textContent = !S.lastOk ? "" : age < 2000 ? "updated just now" : `updated ${dur(age)} ago`;
}

// ---------- charts ----------

/** A small line chart of [t, processed/s, failed/s] points. */
function chart(points, width, height, cls) {
  const svg = s("svg", { class: cls, width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  if (!points || points.length < 2) {
    if (cls === "chart") {
      const t = s("text", { x: 8, y: height / 2 });
      t.textContent = "no history yet (a sample every 10 s while a dashboard runs)";
      svg.append(t);
    }
    return svg;
  }
  const pad = cls === "chart" ? 18 : 2;
  const t0 = points[0][0], t1 = points[points.length - 1][0];
  const max = Math.max(1, ...points.map((p) => Math.max(p[1], p[2])));
  const x = (t) => pad + ((t - t0) / Math.max(1, t1 - t0)) * (width - 2 * pad);
  const y = (v) => height - pad - (v / max) * (height - 2 * pad);
  // A gap of more than 25 s (no dashboard ran) breaks the line.
  const line = (i) => {
    let d = "", prev = null;
    for (const p of points) {
      d += `${prev === null || p[0] - prev > 25000 ? "M" : "L"}${x(p[0]).toFixed(1)},${y(p[i]).toFixed(1)} `;
      prev = p[0];
    }
    return d;
  };
  svg.append(s("path", { class: "p", d: line(1) }), s("path", { class: "f", d: line(2) }));
  if (cls === "chart") {
    const top = s("text", { x: 4, y: 12 });
    top.textContent = `${rate(max)}/s`;
    const left = s("text", { x: pad, y: height - 4 });
    left.textContent = new Date(t0).toLocaleTimeString();
    const right = s("text", { x: width - pad - 60, y: height - 4 });
    right.textContent = new Date(t1).toLocaleTimeString();
    svg.append(top, left, right);
  }
  return svg;
}

// ---------- views ----------

async function viewOverview() {
  const o = await api("api/overview");
  S.queues = o.queues.map((q) => q.name);
  fillFind();
  const rows = o.queues.map((q) => {
    if (q.error) {
      return h("tr", { "data-testid": `queue-row-${q.name}` },
        h("td", {}, q.name), h("td", { colspan: 9, class: "bad" }, q.error));
    }
    const link = `#/queue/${enc(q.name)}`;
    return h("tr", { "data-testid": `queue-row-${q.name}` },
      h("td", {}, h("a", { href: link }, q.name)),
      h("td", { class: "num", "data-testid": "ready" }, num(q.ready)),
      h("td", { class: "num", "data-testid": "in_flight" }, num(q.in_flight)),
      h("td", { class: "num", "data-testid": "scheduled" }, num(q.scheduled)),
      h("td", { class: "num", "data-testid": "dead" },
        q.dead > 0 ? h("a", { href: `${link}/dead`, class: "bad" }, num(q.dead)) : "0"),
      h("td", { class: "num", "data-testid": "oldest" },
        q.ready > 0 ? h("span", { class: q.oldest_ready_age_ms > 60000 ? "warn" : "" }, dur(q.oldest_ready_age_ms)) : "–"),
      h("td", { "data-testid": "paused" },
        q.paused ? h("span", { class: "badge warn" }, "paused") : ""),
      h("td", { class: "num" }, rate(q.processed_per_s)),
      h("td", { class: "num" }, h("span", { class: q.failed_per_s > 0 ? "bad" : "" }, rate(q.failed_per_s))),
      h("td", {}, chart(q.history && q.history.points, 160, 28, "spark")));
  });
  const w = o.workers;
  return h("div", {},
    h("h1", {}, "Queues"),
    h("div", { class: "cards" },
      card("queues", o.queues.length),
      card("live workers", w.live),
      card("stale workers", w.stale, w.stale > 0 ? "bad" : ""),
      card("ready", sum(o.queues, "ready")),
      card("dead", sum(o.queues, "dead"), sum(o.queues, "dead") > 0 ? "bad" : "")),
    o.queues.length === 0
      ? h("p", { class: "muted" }, "No queues yet: a queue appears once a producer or a worker uses it.")
      : h("table", { "data-testid": "overview-table" },
        h("thead", {}, h("tr", {},
          h("th", {}, "queue"), h("th", { class: "num" }, "ready"), h("th", { class: "num" }, "in flight"),
          h("th", { class: "num" }, "scheduled"), h("th", { class: "num" }, "dead"),
          h("th", { class: "num" }, "oldest"), h("th", {}, ""),
          h("th", { class: "num" }, "processed/s"), h("th", { class: "num" }, "failed/s"),
          h("th", {}, "last hour"))),
        h("tbody", {}, rows)),
    h("p", { class: "legend" }, h("span", { class: "lp" }, "—"), " processed/s   ",
      h("span", { class: "lf" }, "—"), " failed/s (retried + dead)   · oldest: the oldest undelivered job"));
}

function card(k, v, cls) {
  return h("div", { class: "card" }, h("div", { class: `v ${cls || ""}` }, num(v)), h("div", { class: "k" }, k));
}

function sum(list, key) {
  return list.reduce((a, q) => a + (Number(q[key]) || 0), 0);
}

const STATES = ["ready", "in-flight", "scheduled", "dead"];

async function viewQueue(r, queue) {
  const state = STATES.includes(r.params.get("state")) ? r.params.get("state") : "ready";
  const v = vstate(`queue:${queue}:${state}`, () => ({ type: "", cursors: [null] }));
  const cursor = v.cursors[v.cursors.length - 1];
  let url = `api/queues/${enc(queue)}/jobs?state=${state}&limit=50`;
  if (v.type) url += `&type=${enc(v.type)}`;
  if (cursor) url += `&cursor=${enc(cursor)}`;
  const [qd, page] = await Promise.all([api(`api/queues/${enc(queue)}`), api(url)]);
  const q = qd.queue;
  const base = `#/queue/${enc(queue)}`;
  const tabs = h("div", { class: "tabs" }, STATES.map((st) =>
    h("a", { href: `${base}?state=${st}`, class: st === state ? "active" : "", "data-testid": `tab-${st}` },
      `${st} (${num({ ready: q.ready, "in-flight": q.in_flight, scheduled: q.scheduled, dead: q.dead }[st])})`)));
  const typeInput = h("input", { "data-testid": "type-filter", placeholder: "type", value: v.type });
  const idInput = h("input", { "data-testid": "queue-find-id", placeholder: "job id" });
  const toolbar = h("div", { class: "toolbar" },
    h("form", { class: "toolbar", onsubmit: (e) => { e.preventDefault(); v.type = typeInput.value.trim(); v.cursors = [null]; render(); } },
      typeInput, h("button", { type: "submit" }, "Filter")),
    h("form", { class: "toolbar", onsubmit: (e) => { e.preventDefault(); findJob(queue, idInput.value); } },
      idInput, h("button", { type: "submit" }, "Find")));
  return h("div", {},
    h("h1", {}, "Queue ", h("span", { class: "mono" }, queue), " ",
      q.paused ? h("span", { class: "badge warn", "data-testid": "paused-badge" }, `paused ${dur(Date.now() - (q.paused_at_ms || Date.now()))}`) : ""),
    h("div", { class: "cards" },
      card("ready", q.ready), card("in flight", q.in_flight), card("scheduled", q.scheduled),
      card("dead", q.dead, q.dead > 0 ? "bad" : ""), card("processed", q.processed),
      card("retried", q.retried), card("consumers", q.consumers)),
    h("div", { class: "toolbar" },
      q.paused
        ? actionButton("Resume", "resume-button", () => act(null, null, `api/queues/${enc(queue)}/resume`, {}), "primary")
        : actionButton("Pause", "pause-button", () => act(
          `Pause ${queue}? No worker will start its jobs until it is resumed; running jobs finish.`,
          "Pause", `api/queues/${enc(queue)}/pause`, {}), "danger"),
      h("a", { href: `${base}/dead` }, "dead letters →")),
    h("div", {}, chart(q.history && q.history.points, 720, 140, "chart"),
      h("div", { class: "legend" }, h("span", { class: "lp" }, "—"), " processed/s  ",
        h("span", { class: "lf" }, "—"), ` failed/s · now ${rate(q.processed_per_s)} / ${rate(q.failed_per_s)}`)),
    tabs, toolbar,
    jobsTable(queue, page.jobs, state),
    pager(v, page));
}

function pager(v, page) {
  return h("div", { class: "pager" },
    h("button", { disabled: v.cursors.length <= 1, "data-testid": "page-prev", onclick: () => { v.cursors.pop(); render(); } }, "← Previous"),
    h("button", { disabled: !page.next, "data-testid": "page-next", onclick: () => { v.cursors.push(page.next); render(); } }, "Next →"),
    h("span", { class: "muted" }, page.capped
      ? `searched ${num(page.scanned)} entries; more may match further on (Next)`
      : `${page.jobs.length} shown`));
}

function jobsTable(queue, jobs, state) {
  if (!jobs.length) return h("p", { class: "muted" }, "No jobs here.");
  const extra = { ready: "enqueued", "in-flight": "worker", scheduled: "due", dead: "reason" }[state];
  return h("table", { "data-testid": "jobs-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "id"), h("th", {}, "type"), h("th", { class: "num" }, "attempt"),
      h("th", {}, extra), h("th", {}, state === "dead" ? "error" : "age"), h("th", { class: "num" }, "payload"))),
    h("tbody", {}, jobs.map((j) => h("tr", { "data-testid": `job-row-${j.id}` },
      h("td", { class: "mono" }, h("a", { href: jobLink(queue, j.id, j.state, j.entry_id, j.due_at_ms) }, j.id)),
      h("td", {}, j.job_type),
      h("td", { class: "num" }, num(j.attempt)),
      h("td", {}, state === "ready" ? when(j.enqueued_at_ms)
        : state === "in-flight" ? h("span", { class: "mono" }, j.consumer || "")
          : state === "scheduled" ? when(j.due_at_ms)
            : h("span", { class: "badge bad" }, j.reason || "")),
      h("td", {}, state === "dead" ? (j.error || "")
        : state === "in-flight" ? `running ${dur(j.idle_ms)}` : dur(Date.now() - j.enqueued_at_ms)),
      h("td", { class: "num" }, `${num(j.payload_bytes)} B`)))));
}

/** A job page's link, with where the job was seen: the server then reads
 * that one entry instead of searching the queue. */
function jobLink(queue, id, state, entry, due) {
  const qs = new URLSearchParams();
  if (state) qs.set("state", state);
  if (entry) qs.set("entry", entry);
  if (due) qs.set("due", String(due));
  return `#/queue/${enc(queue)}/job/${enc(id)}?${qs}`;
}

async function findJob(queue, id) {
  id = (id || "").trim();
  if (!queue || !id) return;
  try {
    const f = await api(`api/queues/${enc(queue)}/find?id=${enc(id)}`);
    const j = f.job;
    if (j) go(jobLink(queue, j.id, j.state, j.entry_id, j.due_at_ms));
    else if (f.record) go(`#/queue/${enc(queue)}/job/${enc(id)}`);
    else flash(`no job ${id} in ${queue} (searched ${num(f.scanned)} entries${f.capped ? ", stopped at the search cap" : ""})`, true);
  } catch (e) {
    flash(e.message, true);
  }
}

async function viewJob(r, queue, id) {
  const v = vstate(`job:${queue}:${id}`, () => ({ showPayload: false }));
  const hint = new URLSearchParams({ id });
  for (const k of ["state", "entry", "due"]) if (r.params.get(k)) hint.set(k, r.params.get(k));
  const d = await api(`api/queues/${enc(queue)}/job?${hint}`);
  const j = d.job, rec = d.record;
  const path = `api/queues/${enc(queue)}`;
  const head = h("h1", {}, "Job ", h("span", { class: "mono" }, id), " in ",
    h("a", { href: `#/queue/${enc(queue)}` }, queue), " ",
    stateBadge(j ? j.state : rec ? rec.state : "not found"));
  if (!j && !rec) {
    return h("div", {}, head, h("p", { class: "muted" },
      `Not in ready, scheduled or dead (searched ${num(d.scanned)} entries${d.capped ? ", stopped at the search cap" : ""}): it finished, or never was here.`));
  }
  const a = d.actions;
  const buttons = h("div", { class: "toolbar" },
    a.run_now ? actionButton("Run now", "action-run-now", () => act(`Run ${id} now? It becomes due at once.`, "Run now", `${path}/job/run-now`, { id }), "primary") : "",
    a.replay ? actionButton("Replay", "action-replay", () => act(`Replay ${id}? It goes back to ready with its attempts reset.`, "Replay", `${path}/dead/replay`, { ids: [j.entry_id] }), "primary") : "",
    a.cancel ? actionButton("Cancel", "action-cancel", () => act(`Cancel ${id}? A job that has not started never runs; a running one is asked to stop.`, "Cancel job", `${path}/job/cancel`, { id }), "danger") : "",
    a.discard ? actionButton("Discard", "action-discard", () => act(`Discard dead job ${id}? It is deleted for good.`, "Discard", `${path}/dead/discard`, { ids: [j.entry_id] }), "danger") : "");
  const parts = [head, buttons];
  if (rec) {
    parts.push(h("h2", {}, "Record"), h("table", { class: "kv", "data-testid": "job-record" }, h("tbody", {},
      kv("state", h("span", { "data-testid": "record-state" }, rec.state)),
      kv("attempts", num(rec.attempt)),
      kv("enqueued", when(rec.enqueued_at_ms)), kv("run at", when(rec.run_at_ms)),
      kv("started", when(rec.started_at_ms)), kv("finished", when(rec.finished_at_ms)),
      kv("worker", rec.worker || "–"),
      rec.progress !== null && rec.progress !== undefined
        ? kv("progress", h("span", {}, h("span", { class: "progress" }, progressBar(rec.progress)), ` ${rec.progress}% ${rec.progress_message || ""}`)) : null,
      rec.last_error ? kv("last error", h("span", { class: "bad" }, `${rec.last_error_class || "error"}: ${rec.last_error}`)) : null,
      rec.cancel_requested_at_ms ? kv("cancel asked", when(rec.cancel_requested_at_ms)) : null,
      rec.result !== null && rec.result !== undefined ? kv("result", h("pre", {}, JSON.stringify(rec.result, null, 2))) : null)));
  }
  if (j) {
    parts.push(h("h2", {}, "Where it is"), h("table", { class: "kv" }, h("tbody", {},
      kv("state", j.state), kv("type", j.job_type), kv("attempt", num(j.attempt)),
      kv("entry id", h("span", { class: "mono" }, j.entry_id || "–")),
      kv("enqueued", when(j.enqueued_at_ms)),
      j.due_at_ms ? kv("due", when(j.due_at_ms)) : null,
      j.consumer ? kv("held by", h("span", { class: "mono" }, `${j.consumer} for ${dur(j.idle_ms)} (delivered ${j.deliveries}×)`)) : null,
      j.reason ? kv("dead because", h("span", { class: "bad" }, j.reason)) : null,
      j.failed_at_ms ? kv("died", when(j.failed_at_ms)) : null)));
  }
  if (d.history && d.history.length) {
    parts.push(h("h2", {}, "Failures"), h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "attempt"), h("th", {}, "when"), h("th", {}, "class"), h("th", {}, "error"))),
      h("tbody", {}, d.history.map((f) => h("tr", {}, h("td", {}, num(f.attempt)), h("td", {}, when(f.at_ms)),
        h("td", {}, f.error_class || ""), h("td", { class: "bad" }, f.error || ""))))),
    h("p", { class: "muted" }, "The wire keeps the last failed attempt's error, not every attempt's."));
  }
  if (j) {
    parts.push(h("h2", {}, "Payload"));
    if (d.payload_hidden) parts.push(h("p", { class: "muted", "data-testid": "job-payload" }, "Payloads are hidden by the server (--hide-payloads)."));
    else if (d.payload_error) parts.push(h("p", { class: "warn", "data-testid": "job-payload" }, d.payload_error));
    else if (!v.showPayload) parts.push(h("button", { "data-testid": "show-payload", onclick: () => { v.showPayload = true; render(); } }, `Show payload (${num(j.payload_bytes)} bytes)`));
    else parts.push(h("pre", { "data-testid": "job-payload" }, JSON.stringify(d.payload, null, 2)));
    parts.push(h("h2", {}, "Fields"), h("table", { class: "kv", "data-testid": "job-fields" },
      h("tbody", {}, j.fields.map(([k, val]) => kv(k, h("span", { class: "mono" }, val))))));
  }
  return h("div", {}, parts);
}

function progressBar(p) {
  const bar = h("span", {});
  bar.style.width = `${Math.max(0, Math.min(100, p))}%`;
  return bar;
}

function kv(k, v) {
  return v === null ? null : h("tr", {}, h("td", {}, k), h("td", {}, v));
}

async function viewDeadPick() {
  const o = await api("api/overview");
  S.queues = o.queues.map((q) => q.name);
  fillFind();
  return h("div", {}, h("h1", {}, "Dead letters"),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "queue"), h("th", { class: "num" }, "dead now"), h("th", { class: "num" }, "ever"))),
      h("tbody", {}, o.queues.map((q) => h("tr", {},
        h("td", {}, h("a", { href: `#/queue/${enc(q.name)}/dead` }, q.name)),
        h("td", { class: "num" }, h("span", { class: q.dead > 0 ? "bad" : "" }, num(q.dead))),
        h("td", { class: "num" }, num(q.dead_total)))))));
}

/** datetime-local value <-> unix ms. */
const toMs = (s) => (s ? new Date(s).getTime() : null);
function toLocal(ms) {
  if (!ms) return "";
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

async function viewDead(r, queue) {
  const v = vstate(`dead:${queue}`, () => ({ reason: "", type: "", since: null, until: null, cursors: [null], selected: new Set() }));
  const cursor = v.cursors[v.cursors.length - 1];
  const qs = new URLSearchParams({ limit: "50" });
  if (v.reason) qs.set("reason", v.reason);
  if (v.type) qs.set("type", v.type);
  if (v.since) qs.set("since_ms", String(v.since));
  if (v.until) qs.set("until_ms", String(v.until));
  if (cursor) qs.set("cursor", cursor);
  const page = await api(`api/queues/${enc(queue)}/dead?${qs}`);
  // An action on the whole filter stops at the newest letter this page
  // showed: letters that die after the person looked are left alone.
  if (!cursor) v.newest = page.newest || "0-0";
  const path = `api/queues/${enc(queue)}/dead`;
  const reason = h("select", { "data-testid": "dead-filter-reason" }, h("option", { value: "" }, "any reason"),
    page.reasons.map((x) => h("option", { value: x }, x)));
  reason.value = v.reason;
  const type = h("input", { "data-testid": "dead-filter-type", placeholder: "type", value: v.type });
  const since = h("input", { type: "datetime-local", "data-testid": "dead-filter-since", value: toLocal(v.since) });
  const until = h("input", { type: "datetime-local", "data-testid": "dead-filter-until", value: toLocal(v.until) });
  const apply = (e) => {
    e.preventDefault();
    Object.assign(v, { reason: reason.value, type: type.value.trim(), since: toMs(since.value), until: toMs(until.value), cursors: [null] });
    v.selected.clear();
    render();
  };
  const howMany = page.next || page.capped ? `more than ${page.jobs.length}` : String(page.jobs.length);
  const filterText = [v.reason && `reason=${v.reason}`, v.type && `type=${v.type}`,
    v.since && `since ${new Date(v.since).toISOString()}`, v.until && `until ${new Date(v.until).toISOString()}`].filter(Boolean).join(", ") || "no filter: EVERY dead job of the queue";
  const filter = { reason: v.reason || null, type: v.type || null, since_ms: v.since, until_ms: v.until, upto: v.newest || "0-0" };
  const selected = [...v.selected];
  const done = (out) => { if (out) { v.selected.clear(); render(); } };
  const rows = page.jobs.map((j) => h("tr", { "data-testid": `dead-row-${j.dead_id}` },
    h("td", {}, h("input", { type: "checkbox", "aria-label": "select", checked: v.selected.has(j.dead_id),
      onchange: (e) => { if (e.target.checked) v.selected.add(j.dead_id); else v.selected.delete(j.dead_id); render(); } })),
    h("td", { class: "mono" }, h("a", { href: jobLink(queue, j.job_id, "dead", j.dead_id) }, j.job_id)),
    h("td", {}, j.job_type),
    h("td", {}, h("span", { class: "badge bad" }, j.reason)),
    h("td", {}, `${j.error_class}: ${j.error}`),
    h("td", { class: "num" }, num(j.attempt)),
    h("td", {}, when(j.failed_at))));
  return h("div", {},
    h("h1", {}, "Dead letters of ", h("a", { href: `#/queue/${enc(queue)}` }, queue)),
    h("form", { class: "toolbar", onsubmit: apply }, reason, type,
      h("label", { class: "muted" }, "from ", since), h("label", { class: "muted" }, "to ", until),
      h("button", { type: "submit", "data-testid": "dead-apply" }, "Apply")),
    h("div", { class: "toolbar" },
      actionButton(`Replay selected (${selected.length})`, "dead-replay-selected", async () => {
        if (selected.length) done(await act(`Replay ${selected.length} selected dead job(s) to ready?`, "Replay", `${path}/replay`, { ids: selected }));
      }, "primary"),
      actionButton(`Discard selected (${selected.length})`, "dead-discard-selected", async () => {
        if (selected.length) done(await act(`Discard ${selected.length} selected dead job(s) for good?`, "Discard", `${path}/discard`, { ids: selected }));
      }, "danger"),
      actionButton("Replay all matching", "dead-replay-filter", async () =>
        done(await act(`Replay every dead job of ${queue} matching: ${filterText} (${howMany})?`, "Replay all", `${path}/replay`, { filter }))),
      actionButton("Discard all matching", "dead-discard-filter", async () =>
        done(await act(`Discard every dead job of ${queue} matching: ${filterText} (${howMany})? They are deleted for good.`, "Discard all", `${path}/discard`, { filter })), "danger")),
    page.jobs.length === 0 ? h("p", { class: "muted" }, "No dead jobs match.")
      : h("table", { "data-testid": "dead-table" },
        h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, "job id"), h("th", {}, "type"), h("th", {}, "reason"),
          h("th", {}, "error"), h("th", { class: "num" }, "attempts"), h("th", {}, "died"))),
        h("tbody", {}, rows)),
    pager(v, page));
}

async function viewWorkers() {
  const d = await api("api/workers");
  const rows = d.workers.map((w) => h("tr", { "data-testid": `worker-row-${w.name}` },
    h("td", { class: "mono" }, w.name, w.stale ? h("span", { class: "badge bad" }, " stale") : ""),
    h("td", {}, w.host), h("td", { class: "num" }, num(w.pid)), h("td", {}, w.queues.join(", ")),
    h("td", { class: "num" }, `${num(w.busy)} / ${num(w.concurrency)}`),
    h("td", {}, when(w.started_at_ms)),
    h("td", {}, h("span", { class: w.stale ? "bad" : "" }, dur(d.now_ms - w.seen_at_ms), " ago")),
    h("td", {}, w.running.length === 0 ? h("span", { class: "muted" }, "idle")
      : h("ul", {}, w.running.map((j) => h("li", {},
        h("a", { class: "mono", href: jobLink(j.queue, j.id, "in-flight", j.entry_id) }, j.id),
        ` ${j.job_type} on ${j.queue}, ${dur(j.idle_ms)}`))))));
  const live = d.workers.filter((w) => !w.stale).length;
  return h("div", {}, h("h1", {}, "Workers"),
    h("div", { class: "cards" }, card("live", live), card("stale", d.workers.length - live, d.workers.length > live ? "bad" : "")),
    d.workers.length === 0 ? h("p", { class: "muted" }, "No worker has sent a heartbeat.")
      : h("table", { "data-testid": "workers-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "worker"), h("th", {}, "host"), h("th", { class: "num" }, "pid"), h("th", {}, "queues"),
          h("th", { class: "num" }, "busy"), h("th", {}, "started"), h("th", {}, "last seen"), h("th", {}, "running"))),
        h("tbody", {}, rows)),
    h("p", { class: "muted" }, `Stale: no heartbeat for ${dur(d.stale_after_ms)} (killed, stalled or cut off); its jobs are reclaimed by live workers.`));
}

async function viewSchedules() {
  const d = await api("api/schedules");
  const crons = d.crons.length === 0 ? h("p", { class: "muted", "data-testid": "schedules-crons" }, "No periodic schedules declared.")
    : h("table", { "data-testid": "schedules-crons" },
      h("thead", {}, h("tr", {}, ["name", "queue", "type", "cron", "zone", "missed", "last fired", "next"].map((x) => h("th", {}, x)))),
      h("tbody", {}, d.crons.map((c) => h("tr", {},
        h("td", { class: "mono" }, c.name), h("td", {}, c.queue), h("td", {}, c.job_type), h("td", { class: "mono" }, c.cron),
        h("td", {}, c.time_zone), h("td", {}, c.missed), h("td", {}, when(c.last_fired_ms)), h("td", {}, when(c.next_at_ms))))));
  const limits = d.limits.length === 0 ? h("p", { class: "muted" }, "No limits, rate limits or holds.")
    : h("table", { "data-testid": "schedules-limits" },
      h("thead", {}, h("tr", {}, h("th", {}, "queue"), h("th", {}, "backpressure"), h("th", {}, "rate limits"), h("th", {}, "held keys"))),
      h("tbody", {}, d.limits.map((l) => h("tr", {},
        h("td", {}, h("a", { href: `#/queue/${enc(l.queue)}` }, l.queue)),
        h("td", {}, l.limits ? limitText(l.limits) : "–"),
        h("td", {}, (l.rate_limits || []).length === 0 ? "–" : h("ul", {}, l.rate_limits.map((x) =>
          h("li", {}, `${x.scope}${x.name ? ` ${x.name}` : ""}: ${x.limit} per ${dur(x.per_ms)}, burst ${x.burst} (${x.workers} worker${x.workers === 1 ? "" : "s"})`)))),
        h("td", {}, (l.holds || []).length === 0 ? "–" : h("ul", {}, l.holds.map((x) =>
          h("li", {}, h("span", { class: "mono" }, x.key), " until ", when(x.until_ms)))))))));
  return h("div", {}, h("h1", {}, "Periodic schedules"), crons, h("h2", {}, "Limits"), limits);
}

function limitText(l) {
  const parts = [];
  if (l.max_ready !== null && l.max_ready !== undefined) parts.push(`max ready ${num(l.max_ready)}`);
  if (l.max_age_ms !== null && l.max_age_ms !== undefined) parts.push(`max age ${dur(l.max_age_ms)}`);
  parts.push(`policy ${typeof l.policy === "string" ? l.policy : JSON.stringify(l.policy)}`);
  if (l.shed_to_dead) parts.push("shed to dead");
  return parts.join(", ");
}

async function viewLogin() {
  const input = h("input", { type: "password", "data-testid": "login-token", autocomplete: "current-password", placeholder: "token" });
  const err = h("p", { class: "bad" });
  const form = h("form", { class: "login", onsubmit: async (e) => {
    e.preventDefault();
    try {
      await post("api/login", { token: input.value });
      input.value = "";
      await loadConfig();
      go("#/");
    } catch (ex) {
      err.textContent = ex.message;
    }
  } },
  h("h1", {}, "Log in"),
  h("p", { class: "muted" }, "This dashboard needs its token (jobstream dashboard --token)."),
  input, h("button", { type: "submit", class: "primary", "data-testid": "login-submit" }, "Log in"), err);
  setTimeout(() => input.focus(), 0);
  return form;
}

// ---------- the find box, start ----------

async function fillFind() {
  const sel = document.querySelector("[data-testid=find-queue]");
  const current = sel.value;
  if ([...sel.options].map((o) => o.value).join() === S.queues.join()) return;
  sel.replaceChildren(...S.queues.map((q) => h("option", { value: q }, q)));
  if (S.queues.includes(current)) sel.value = current;
  const r = pick(route());
  if (r[1] && S.queues.includes(r[1])) sel.value = r[1];
}

async function loadConfig() {
  S.config = await fetch("api/config", { credentials: "same-origin" }).then((r) => r.json());
  document.querySelector("[data-testid=readonly-badge]").hidden = !!S.config.can_act;
  document.querySelector("[data-testid=readonly-badge]").title = S.config.read_only_reason || "";
  document.querySelector("[data-testid=logout]").hidden = !(S.config.auth === "token" && S.config.authenticated);
}

async function start() {
  try {
    await loadConfig();
  } catch (e) {
    banner("the dashboard server cannot be reached");
  }
  document.querySelector("[data-testid=find-form]").addEventListener("submit", (e) => {
    e.preventDefault();
    findJob(document.querySelector("[data-testid=find-queue]").value, document.querySelector("[data-testid=find-id]").value);
  });
  document.querySelector("[data-testid=logout]").addEventListener("click", async () => {
    await post("api/logout", {}).catch(() => null);
    await loadConfig();
    go("#/login");
  });
  window.addEventListener("hashchange", render);
  if (S.config && S.config.can_read) {
    api("api/overview").then((o) => { S.queues = o.queues.map((q) => q.name); fillFind(); }).catch(() => null);
  }
  await render();
  const every = (S.config && S.config.refresh_ms) || 3000;
  S.timer = setInterval(refresh, every);
  setInterval(stamp, 1000);
}

document.addEventListener("DOMContentLoaded", start);
