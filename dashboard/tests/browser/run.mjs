// Drives Debian's Chromium through the jobstream dashboard, as an on-call
// engineer would. Run by cli/tests/dashboard_browser.rs, which starts Redis,
// a worker (types ok, flaky, slow) and `jobstream dashboard` bound beyond
// localhost with a token, and passes:
//   DASHBOARD_URL TOKEN QUEUE DEAD_JOB_ID SCHEDULED_JOB_ID XSS_JOB_ID
//   JOBSTREAM_BIN REDIS_URL PREFIX SCREENSHOT_DIR CHROMIUM
// Prints "ok - <step>" per step; on a failure, what was expected and seen,
// a screenshot failure-<step>.png, and exit status 1.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const URL_ = env("DASHBOARD_URL");
const TOKEN = env("TOKEN");
const Q = env("QUEUE");
const DEAD_ID = env("DEAD_JOB_ID");
const SCHEDULED_ID = env("SCHEDULED_JOB_ID");
const XSS_ID = process.env.XSS_JOB_ID || "";
const SHOTS = env("SCREENSHOT_DIR");
const cliEnv = { ...process.env, REDIS_URL: env("REDIS_URL"), JOBSTREAM_PREFIX: process.env.PREFIX || "jobstream" };

function cli(...args) {
  return execFileSync(env("JOBSTREAM_BIN"), args, { env: cliEnv, encoding: "utf8" });
}
function stats() {
  return JSON.parse(cli("stats", "--queue", Q, "--json")).queues[0];
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` (sync or async) until it returns truthy, or fails with `what`. */
async function until(what, check, timeoutMs = 10000) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    await sleep(200);
  }
  throw new Error(`timed out: ${what} (last seen: ${JSON.stringify(last)})`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const context = await browser.newContext({ viewport: { width: 1360, height: 860 } });
const page = await context.newPage();
const dialogs = [];
page.on("dialog", async (d) => { dialogs.push(d.message()); await d.dismiss(); });
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(e.message));

let current = "start";
async function step(name, body) {
  current = name;
  await body();
  console.log(`ok - ${name}`);
}
const shot = (file) => page.screenshot({ path: join(SHOTS, file), fullPage: true });
const text = (sel) => page.locator(sel).first().innerText();
const csrf = () => page.evaluate(() => fetch("api/config").then((r) => r.json()).then((c) => c.csrf));
const pagePost = (path, headers) => page.evaluate(async ([p, hs]) => {
  const r = await fetch(p, { method: "POST", credentials: "same-origin", headers: hs, body: "{}" });
  return r.status;
}, [path, headers]);

try {
  await step("without the token: the login view, and actions refused with 401", async () => {
    await page.goto(URL_);
    await page.locator("[data-testid=login-token]").waitFor({ timeout: 10000 });
    await shot("login.png");
    const direct = await fetch(new URL(`api/queues/${encodeURIComponent(Q)}/pause`, URL_), {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
    });
    if (direct.status !== 401) throw new Error(`a POST without the token got ${direct.status}, not 401`);
    const token = await csrf();
    const inPage = await pagePost(`api/queues/${encodeURIComponent(Q)}/pause`,
      { "Content-Type": "application/json", "X-Jobstream-Csrf": token });
    if (inPage !== 401) throw new Error(`a POST from the page without the token got ${inPage}, not 401`);
    const overview = await fetch(new URL("api/overview", URL_));
    if (overview.status !== 401) throw new Error(`a read without the token got ${overview.status}`);
    if (stats().paused) throw new Error("the queue was paused by a refused request");
  });

  await step("log in; the overview matches jobstream stats --json", async () => {
    await page.fill("[data-testid=login-token]", TOKEN);
    await page.click("[data-testid=login-submit]");
    const row = `[data-testid="queue-row-${Q}"]`;
    await page.locator(row).waitFor({ timeout: 10000 });
    await until("the overview's cells equal stats --json", async () => {
      const s = stats();
      const cells = {
        ready: await text(`${row} [data-testid=ready]`),
        in_flight: await text(`${row} [data-testid=in_flight]`),
        scheduled: await text(`${row} [data-testid=scheduled]`),
        dead: await text(`${row} [data-testid=dead]`),
      };
      const want = { ready: s.ready, in_flight: s.in_flight, scheduled: s.scheduled, dead: s.dead };
      const same = Object.keys(want).every((k) => Number(cells[k].replace(/,/g, "")) === want[k]);
      return same ? true : { cells, want };
    });
    await shot("overview.png");
  });

  await step("logged in, a POST without the CSRF header or from another origin is refused (403)", async () => {
    const noCsrf = await pagePost(`api/queues/${encodeURIComponent(Q)}/pause`, { "Content-Type": "application/json" });
    if (noCsrf !== 403) throw new Error(`no CSRF header: ${noCsrf}, not 403`);
    const cookie = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join("; ");
    const cross = await fetch(new URL(`api/queues/${encodeURIComponent(Q)}/pause`, URL_), {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Jobstream-Csrf": await csrf(), Cookie: cookie, Origin: "http://evil.example" },
      body: "{}",
    });
    if (cross.status !== 403) throw new Error(`cross-origin: ${cross.status}, not 403`);
    if (stats().paused) throw new Error("the queue was paused by a refused request");
  });

  await step("find the dead job by id, replay it, see it processed", async () => {
    const before = stats();
    await page.selectOption("[data-testid=find-queue]", Q);
    await page.fill("[data-testid=find-id]", DEAD_ID);
    await page.click("[data-testid=find-submit]");
    await until("the job page shows it dead", async () => (await text("[data-testid=job-state]")) === "dead");
    await page.click("[data-testid=show-payload]");
    await page.locator("[data-testid=job-payload]").waitFor();
    const payload = await text("[data-testid=job-payload]");
    if (!payload.includes("replay me")) throw new Error(`the payload shown is ${payload}`);
    await shot("job.png");
    await page.click("[data-testid=action-replay]");
    await page.click("[data-testid=confirm-ok]");
    await until("its record says completed", async () => (await text("[data-testid=record-state]")) === "completed", 15000);
    const after = stats();
    if (!(after.processed > before.processed && after.dead === before.dead - 1)) {
      throw new Error(`stats before ${JSON.stringify(before)} after ${JSON.stringify(after)}`);
    }
  });

  await step("dead letters: the list, filtered by reason", async () => {
    await page.goto(`${URL_}#/queue/${encodeURIComponent(Q)}/dead`);
    await page.locator("[data-testid=dead-table]").waitFor();
    await shot("dead.png");
    await page.selectOption("[data-testid=dead-filter-reason]", "unknown_type");
    await page.click("[data-testid=dead-apply]");
    await until("only unknown_type rows", async () => {
      const rows = await page.locator("[data-testid=dead-table] tbody tr").allInnerTexts();
      return rows.length >= 1 && rows.every((r) => r.includes("unknown_type")) ? true : rows;
    });
  });

  await step("a scheduled job, run now, is processed", async () => {
    const before = stats();
    await page.goto(`${URL_}#/queue/${encodeURIComponent(Q)}?state=scheduled`);
    await page.locator(`[data-testid="job-row-${SCHEDULED_ID}"]`).waitFor();
    await shot("queue.png");
    await page.click(`[data-testid="job-row-${SCHEDULED_ID}"] a`);
    await page.click("[data-testid=action-run-now]");
    await page.click("[data-testid=confirm-ok]");
    await until("it ran", () => {
      const s = stats();
      return s.scheduled === before.scheduled - 1 && s.processed === before.processed + 1 ? true : s;
    });
  });

  await step("pause: workers leave its jobs; resume: they run", async () => {
    await page.goto(`${URL_}#/queue/${encodeURIComponent(Q)}`);
    await page.click("[data-testid=pause-button]");
    await page.click("[data-testid=confirm-ok]");
    await page.locator("[data-testid=paused-badge]").waitFor();
    if (!stats().paused) throw new Error("stats does not say paused");
    // Workers read the paused queues every 250 ms: a job enqueued in the
    // same instant may still be fetched (the documented "within a second").
    await sleep(1500);
    const before = stats();
    for (let i = 0; i < 3; i++) cli("enqueue", "--queue", Q, "--type", "ok", "--payload-json", "{}");
    await sleep(3000);
    const s = stats();
    if (s.ready !== before.ready + 3 || s.processed !== before.processed) {
      throw new Error(`paused for 3 s: before ${JSON.stringify(before)}, after ${JSON.stringify(s)}`);
    }
    const ready = String(s.ready);
    await page.goto(URL_);
    await until("the overview shows the jobs ready and the queue paused", async () => {
      const row = `[data-testid="queue-row-${Q}"]`;
      return (await text(`${row} [data-testid=ready]`)) === ready && (await text(`${row} [data-testid=paused]`)).includes("paused");
    });
    await page.goto(`${URL_}#/queue/${encodeURIComponent(Q)}`);
    await page.click("[data-testid=resume-button]");
    await until("the 3 jobs ran", () => stats().ready === 0 && !stats().paused, 10000);
  });

  await step("workers: the live worker and its running slow job; schedules", async () => {
    await page.goto(`${URL_}#/workers`);
    await until("the worker runs the slow job", async () => (await text("[data-testid=workers-table]")).includes("slow"));
    await shot("workers.png");
    await page.goto(`${URL_}#/schedules`);
    await page.locator("h1").waitFor();
    await shot("schedules.png");
  });

  if (XSS_ID) {
    await step("a hostile job type is shown as text", async () => {
      await page.goto(`${URL_}#/queue/${encodeURIComponent(Q)}/job/${encodeURIComponent(XSS_ID)}`);
      await until("the job page", async () => (await text("[data-testid=job-state]")) === "dead");
      const fields = await text("[data-testid=job-fields]");
      if (!fields.includes("<img src=x onerror=alert(1)>")) throw new Error(`fields: ${fields}`);
      if (await page.locator("main img").count()) throw new Error("an <img> from the job type is in the page");
      if (dialogs.length) throw new Error(`dialogs fired: ${dialogs}`);
    });
  }

  await step("the overview after the run (with history)", async () => {
    await page.goto(URL_);
    await page.locator(`[data-testid="queue-row-${Q}"]`).waitFor();
    await sleep(1500);
    await shot("overview-after.png");
    if (pageErrors.length) throw new Error(`errors in the page: ${pageErrors.join("; ")}`);
  });
} catch (e) {
  console.log(`not ok - ${current}: ${e.message}`);
  try { await shot(`failure-${current.replace(/[^a-z0-9]+/gi, "-").slice(0, 60)}.png`); } catch (_) { /* no page */ }
  await browser.close();
  process.exit(1);
}
await browser.close();
