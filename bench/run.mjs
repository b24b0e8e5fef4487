// `npm run bench`: the Rust Worker against its TypeScript twin (bench/ts-twin), on the
// same local runtime in the same run. Prints one table (each figure's median over its
// runs with the spread, Rust/TS, the issue's target and whether the median meets it) and
// writes it to bench/results.md with the machine and versions. Figures only: nothing
// here passes or fails, and no test asserts a time.
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync, writeFileSync, rmSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import autocannon from "autocannon";
import { startStandin } from "../tests/e2e/standin.mjs";
import { copyStarter, startDevServer, root, wrangler, sleep } from "../tests/e2e/devserver.mjs";
import { TOKEN, call, timeInstance } from "./client.mjs";

const twinDir = path.join(root, "bench/ts-twin");
/// BENCH_QUICK=1: one run of everything and a 3 s status-route load, for development; the
/// figures are then single samples, not medians. BENCH_RUNS and BENCH_ORDER_RUNS override
/// the run counts either way.
const QUICK = process.env.BENCH_QUICK === "1";
const RUNS = Number(process.env.BENCH_RUNS ?? (QUICK ? 1 : 5));
const ORDER_RUNS = Number(process.env.BENCH_ORDER_RUNS ?? (QUICK ? 1 : 3));
const HTTP_RUNS = Number(process.env.BENCH_HTTP_RUNS ?? (QUICK ? 1 : 3));
const HTTP_SECONDS = QUICK ? 3 : 10;
const STEPS = 200;
const RECORDS = 50_000;
const ORDERS = 200;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const log = (...a) => console.error("bench:", ...a);
// Sizes and start-up are measured on the production build (no WORKFLOWS_PROBE: step-tour's
// code left out, as `wrangler deploy` builds it); the timed figures need step-tour, so the
// Workers under load run the probe build (startDevServer sets WORKFLOWS_PROBE=1).
const { WORKFLOWS_PROBE: _probe, ...parentEnv } = process.env;
const env = { ...parentEnv, WRANGLER_SEND_METRICS: "false", CI: "true" };
const build = (kindEnv) => execFileSync("bash", ["scripts/build.sh"], { cwd: root, env: { ...env, ...kindEnv }, stdio: ["ignore", "inherit", "inherit"] });

function uploadSize(cwd, extraEnv = {}) {
  const out = mkdtempSync(path.join(os.tmpdir(), "bench-dry-"));
  const text = execFileSync(wrangler, ["deploy", "--dry-run", "--outdir", out], { cwd, env: { ...env, ...extraEnv }, stdio: ["ignore", "pipe", "pipe"], maxBuffer: 1 << 26 }).toString();
  rmSync(out, { recursive: true, force: true });
  const m = text.match(/Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/);
  if (!m) throw new Error(`no upload size in: ${text}`);
  return { raw: Number(m[1]), gzip: Number(m[2]) };
}

/// CPU time of the start-up phase, from `wrangler check startup`'s profile: profile
/// time minus the samples spent idle. A profile with no busy sample at all (seen once on a
/// loaded machine: the start-up fell between samples) measured nothing, and is taken again,
/// up to three times; it is never counted as 0 ms.
function startupCpuMs(cwd) {
  for (let attempt = 1; ; attempt++) {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), "bench-startup-")), "startup.cpuprofile");
    execFileSync(wrangler, ["check", "startup", "--outfile", file], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    const profile = JSON.parse(readFileSync(file, "utf8"));
    rmSync(path.dirname(file), { recursive: true, force: true });
    const idle = new Set(profile.nodes.filter((n) => n.callFrame.functionName === "(idle)").map((n) => n.id));
    let busy = 0;
    profile.samples.forEach((id, i) => { if (!idle.has(id)) busy += profile.timeDeltas[i] ?? 0; });
    if (busy > 0) return busy / 1000;
    if (attempt === 3) throw new Error(`wrangler check startup in ${cwd}: three profiles without a busy sample`);
    log(`start-up profile of ${cwd} had no busy sample; taking it again`);
  }
}

/// What to measure: BENCH_ONLY=steps,transform (any of size, startup, steps, transform,
/// http, orders, scale) runs just those; the default is all of them.
const ONLY = new Set((process.env.BENCH_ONLY ?? "size,startup,steps,transform,http,orders,scale").split(",").map((s) => s.trim()));

/// Takes `runs` samples of each Worker with `sample(server, name)`, alternating Rust and
/// TypeScript and swapping which goes first every run, so that drift in the machine's load
/// (and any cost of going first) falls on both alike. Returns every sample of each, in order.
async function alternating(servers, runs, sample) {
  const names = Object.keys(servers);
  const samples = Object.fromEntries(names.map((k) => [k, []]));
  for (let i = 0; i < runs; i++) {
    const order = i % 2 ? [...names].reverse() : names;
    for (const name of order) samples[name].push(await sample(servers[name], name));
  }
  return samples;
}

const stepTour = (base, actions) => timeInstance(base, "step-tour", { actions }).then((r) => r.ms);

/// Per run and Worker: a 0-step instance, then a STEPS-step one; the difference over STEPS.
async function measureSteps(servers) {
  log(`step overhead, ${RUNS} alternating runs`);
  return alternating(servers, RUNS, async (server) => {
    const empty = await stepTour(server.base, [{ noop: { name: "noop", count: 0 } }]);
    const full = await stepTour(server.base, [{ noop: { name: "noop", count: STEPS } }]);
    return (full - empty) / STEPS;
  });
}

/// Transforms per step in the long run: the difference between a step that transforms
/// the records REPEAT times and one that transforms them once, divided by REPEAT - 1, is
/// the time of one transform with download, step and polling costs cancelled out.
const REPEAT = 11;

async function measureTransform(servers, standin) {
  log(`transform of ${RECORDS} records, ${RUNS} alternating runs`);
  const source = `${standin.url}/source/bench?n=${RECORDS}`;
  const check = {};
  for (const [name, server] of Object.entries(servers)) {
    check[name] = (await timeInstance(server.base, "step-tour", { actions: [{ transform: { name: "t", url: source } }] })).output[0];
  }
  const ms = await alternating(servers, RUNS, async (server) => {
    const once = await stepTour(server.base, [{ transform: { name: "t", url: source, repeat: 1 } }]);
    const many = await stepTour(server.base, [{ transform: { name: "t", url: source, repeat: REPEAT } }]);
    return (many - once) / (REPEAT - 1);
  });
  return { check, ms };
}

/// The status route of a finished (terminal) instance under load; one instance per Worker,
/// created before the first run, loaded HTTP_RUNS times for HTTP_SECONDS each, alternating.
async function measureHttp(servers) {
  log(`status route at concurrency 32, ${HTTP_RUNS} alternating runs of ${HTTP_SECONDS} s`);
  const urls = {};
  for (const [name, server] of Object.entries(servers)) {
    const { body } = await call(server.base, "POST", "/workflows/step-tour/instances", { params: { actions: [] } });
    for (;;) {
      const s = await call(server.base, "GET", `/workflows/step-tour/instances/${body.id}`);
      if (s.body?.status === "complete") break;
      await sleep(100);
    }
    urls[name] = `${server.base}/workflows/step-tour/instances/${body.id}`;
  }
  const runs = await alternating(servers, HTTP_RUNS, async (_server, name) => {
    const load = await autocannon({ url: urls[name], connections: 32, duration: HTTP_SECONDS, headers: { authorization: `Bearer ${TOKEN}` } });
    return { rps: load.requests.average, p50: load.latency.p50, p99: load.latency.p99, non2xx: load.non2xx };
  });
  const pick = (k) => Object.fromEntries(Object.entries(runs).map(([name, xs]) => [name, xs.map((x) => x[k])]));
  return { rps: pick("rps"), p50: pick("p50"), p99: pick("p99"), non2xx: pick("non2xx") };
}

async function measureOrders(server, name) {
  log(`${name}: ${ORDERS} concurrent order-processing instances`);
  const t0 = performance.now();
  const ids = await Promise.all(
    Array.from({ length: ORDERS }, async (_, i) => {
      const orderId = `bench-${name}-${i}-${Date.now()}`;
      const params = { orderId, userId: `u-${i}`, items: [{ productId: "p-1", quantity: 1 }], fulfillmentDelay: "1 second" };
      const r = await call(server.base, "POST", "/workflows/order-processing/instances", { id: orderId, params });
      if (r.status !== 201) throw new Error(`order create: ${r.status} ${JSON.stringify(r.body)}`);
      return orderId;
    }),
  );
  const pending = new Set(ids);
  while (pending.size) {
    await Promise.all([...pending].map(async (id) => {
      const s = await call(server.base, "GET", `/workflows/order-processing/instances/${id}`);
      if (s.body?.status === "complete") pending.delete(id);
      else if (["errored", "terminated"].includes(s.body?.status)) throw new Error(`order ${id} ${s.body.status}`);
    }));
    if (pending.size) await sleep(250);
  }
  return (performance.now() - t0) / 1000;
}

/// The resident memory (MiB) of every workerd process under process `root`: the runtime
/// wrangler dev starts, found by walking /proc's parent links.
function workerdRssMiB(root) {
  const parents = new Map();
  const names = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      names.set(Number(entry), stat.slice(stat.indexOf("(") + 1, close));
      parents.set(Number(entry), Number(stat.slice(close + 2).split(" ")[1]));
    } catch {}
  }
  const under = (pid) => {
    for (let p = pid; p > 1; p = parents.get(p) ?? 0) if (p === root) return true;
    return false;
  };
  let kib = 0;
  for (const [pid, name] of names) {
    if (!name.startsWith("workerd") || !under(pid)) continue;
    try {
      kib += Number(readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)?.[1] ?? 0);
    } catch {}
  }
  return kib / 1024;
}

/// Runs `tasks` (functions returning promises) with at most `limit` in flight.
async function pooled(tasks, limit) {
  const results = new Array(tasks.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]();
    }
  }));
  return results;
}

/// SCALE instances of a one-step step-tour at once (created 50 requests at a time, all
/// running together), until every one has ended or SCALE_DEADLINE_MS passed: the seconds
/// until all completed, how many completed, how many were lost (never created, failed, or
/// not ended by the deadline), and workerd's peak resident memory meanwhile (sampled every
/// 250 ms).
const SCALE = 1000;
const SCALE_DEADLINE_MS = 300_000;

async function measureScale(server, name) {
  log(`${name}: ${SCALE} concurrent step-tour instances`);
  let peak = workerdRssMiB(server.pid);
  const sampler = setInterval(() => { peak = Math.max(peak, workerdRssMiB(server.pid)); }, 250);
  try {
    const t0 = performance.now();
    const stamp = Date.now().toString(36);
    const created = await pooled(Array.from({ length: SCALE }, (_, i) => async () => {
      const id = `scale-${name}-${stamp}-${i}`;
      const r = await call(server.base, "POST", "/workflows/step-tour/instances", { id, params: { actions: [{ noop: { name: "n", count: 1 } }] } }).catch(() => ({ status: 0 }));
      return r.status === 201 ? id : null;
    }), 50);
    const pending = new Set(created.filter(Boolean));
    let complete = 0;
    while (pending.size && performance.now() - t0 < SCALE_DEADLINE_MS) {
      await pooled([...pending].map((id) => async () => {
        const s = await call(server.base, "GET", `/workflows/step-tour/instances/${id}`).catch(() => null);
        if (s?.body?.status === "complete") { pending.delete(id); complete++; }
        else if (["errored", "terminated"].includes(s?.body?.status)) pending.delete(id);
      }), 50);
      if (pending.size) await sleep(500);
    }
    return { seconds: (performance.now() - t0) / 1000, complete, lost: SCALE - complete, peak: Math.max(peak, workerdRssMiB(server.pid)) };
  } finally {
    clearInterval(sampler);
  }
}

/// The issue's targets (issue 22), by figure key: a figure's own Rust value (`absolute`)
/// or its Rust/TS ratio (the median of the runs' ratios), with the bound it must stay
/// under (`max`) or over (`min`).
const TARGETS = {
  gzip: { absolute: true, max: 400, unit: " KiB" },
  starterGzip: { absolute: true, max: 200, unit: " KiB" },
  startup: { max: 1.0 },
  steps: { max: 1.0 },
  transform: { max: 0.4 },
  rps: { min: 1.5 },
  orders: { max: 0.95 },
};

/// One figure: every sample of each Worker (runs alternate, so `rust[i]` and `ts[i]` are a
/// pair and `rust[i] / ts[i]` is run i's ratio).
const figures = [];
const figure = (key, name, samples) => figures.push({ key, name, rust: samples.rust, ts: samples.ts });

const fmt = (x) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(2));
const spread = (xs) => (xs.length > 1 ? ` (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})` : "");
const ratios = (f) => f.rust.map((r, i) => r / f.ts[i % f.ts.length]);

function verdict(f) {
  const t = TARGETS[f.key];
  if (!t) return ["", ""];
  const value = t.absolute ? median(f.rust) : median(ratios(f));
  const bound = t.max !== undefined ? `≤ ${t.max}${t.absolute ? t.unit : "×"}` : `≥ ${t.min}×`;
  const met = t.max !== undefined ? value <= t.max : value >= t.min;
  return [bound, met ? "met" : "**missed**"];
}

function renderTable() {
  return [
    "| figure | runs | Rust, median (min–max) | TypeScript, median (min–max) | Rust / TS, median (min–max) | target | verdict |",
    "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ...figures.map((f) => {
      const rs = ratios(f);
      const [bound, met] = verdict(f);
      return `| ${f.name} | ${f.rust.length} | ${fmt(median(f.rust))}${spread(f.rust)} | ${fmt(median(f.ts))}${spread(f.ts)} | ${median(rs).toFixed(2)}${rs.length > 1 ? ` (${Math.min(...rs).toFixed(2)}–${Math.max(...rs).toFixed(2)})` : ""} | ${bound} | ${met} |`;
    }),
  ].join("\n");
}

function versions() {
  const v = (cmd, args) => {
    try { return execFileSync(cmd, args, { env }).toString().trim().split("\n")[0]; } catch { return "unknown"; }
  };
  const cpu = (readFileSync("/proc/cpuinfo", "utf8").match(/model name\s*:\s*(.*)/) ?? [])[1] ?? "unknown";
  return {
    machine: `${os.cpus().length} × ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.type()} ${os.release()}`,
    wrangler: v(wrangler, ["--version"]),
    workerd: v(path.join(root, "node_modules/.bin/workerd"), ["--version"]),
    rustc: v("rustc", ["+nightly", "--version"]),
    node: process.version,
  };
}

async function main() {
  const notes = [];
  if (ONLY.has("size") || ONLY.has("startup")) {
    log("building the Rust Worker for production (no probe)");
    build({});
  }

  if (ONLY.has("size")) {
    log("upload sizes (wrangler deploy --dry-run)");
    const size = { rust: uploadSize(root), ts: uploadSize(twinDir) };
    figure("raw", "upload, raw (KiB)", { rust: [size.rust.raw], ts: [size.ts.raw] });
    figure("gzip", "upload, gzip (KiB)", { rust: [size.rust.gzip], ts: [size.ts.gzip] });
    // The starter (one workflow, the HTTP API) as a user copies it, built the same way; its
    // TypeScript column is the twin's, the nearest TypeScript Worker there is.
    log("building the starter Worker (templates/starter, copied out)");
    const starter = copyStarter();
    try {
      const built = uploadSize(starter, { CARGO_TARGET_DIR: path.join(root, "target/starter") });
      figure("starterRaw", "starter upload, raw (KiB)", { rust: [built.raw], ts: [size.ts.raw] });
      figure("starterGzip", "starter upload, gzip (KiB)", { rust: [built.gzip], ts: [size.ts.gzip] });
    } finally {
      rmSync(starter, { recursive: true, force: true });
    }
  }
  if (ONLY.has("startup")) {
    log(`start-up CPU (wrangler check startup), ${RUNS} alternating runs`);
    figure("startup", "start-up CPU (ms)", await alternating({ rust: root, ts: twinDir }, RUNS, async (cwd) => startupCpuMs(cwd)));
  }

  if (["steps", "transform", "http", "orders", "scale"].some((k) => ONLY.has(k))) {
    log("building the Rust Worker with the probe (step-tour)");
    build({ WORKFLOWS_PROBE: "1" });
    const standin = await startStandin();
    const vars = {
      INVENTORY_URL: `${standin.url}/inventory`,
      PAYMENTS_URL: `${standin.url}/payments`,
      SHIPPING_URL: `${standin.url}/shipping`,
      NOTIFY_URL: `${standin.url}/notify`,
      API_TOKEN: TOKEN,
      // The Rust Worker's step-tour and loopback stand-ins need these (never set in production).
      ENABLE_STEP_TOUR: "true",
      ALLOW_PRIVATE_HOSTS: "127.0.0.1",
    };
    // Both Workers run side by side for the whole measurement, so samples can alternate.
    const servers = {};
    try {
      for (const [name, cwd, migrate] of [["rust", root, true], ["ts", twinDir, false]]) {
        servers[name] = await startDevServer({ cwd, migrate, vars, readyPath: "/", log: path.join(root, `bench/.tmp/run/${name}-wrangler.log`) });
      }
      if (ONLY.has("steps")) figure("steps", `step overhead, ${STEPS}-step no-op workflow (ms/step)`, await measureSteps(servers));
      if (ONLY.has("transform")) {
        const { check, ms } = await measureTransform(servers, standin);
        figure("transform", `transform of ${RECORDS} records (ms)`, ms);
        notes.push(`both transforms counted ${check.rust?.records}/${check.ts?.records} records kept and ${check.rust?.dropped}/${check.ts?.dropped} dropped`);
      }
      if (ONLY.has("http")) {
        const http = await measureHttp(servers);
        figure("rps", `status route, terminal instance, c=32 ${HTTP_SECONDS} s (req/s)`, http.rps);
        figure("p50", "status route latency p50 (ms)", http.p50);
        figure("p99", "status route latency p99 (ms)", http.p99);
        const sum = (xs) => xs.reduce((a, b) => a + b, 0);
        notes.push(`non-2xx answers under load: Rust ${sum(http.non2xx.rust)}, TypeScript ${sum(http.non2xx.ts)}`);
      }
      if (ONLY.has("scale")) {
        log(`scale, ${ORDER_RUNS} alternating runs`);
        const scale = await alternating(servers, ORDER_RUNS, measureScale);
        const pick = (k) => Object.fromEntries(Object.entries(scale).map(([name, xs]) => [name, xs.map((x) => x[k])]));
        figure("scaleSeconds", `${SCALE} concurrent one-step instances, until all complete (s)`, pick("seconds"));
        figure("scalePeak", `workerd peak resident memory during them (MiB)`, pick("peak"));
        const counts = (name) => scale[name].map((x) => `${x.complete}/${SCALE} complete, ${x.lost} lost`).join("; ");
        notes.push(`${SCALE} concurrent instances: Rust ${counts("rust")}; TypeScript ${counts("ts")}`);
      }
      if (ONLY.has("orders")) {
        log(`orders, ${ORDER_RUNS} alternating runs`);
        figure("orders", `${ORDERS} concurrent order-processing, end to end (s)`, await alternating(servers, ORDER_RUNS, measureOrders));
      }
    } finally {
      for (const server of Object.values(servers)) await server.stop();
      standin.closeAll();
      await standin.close();
    }
  }

  const table = renderTable();
  console.log(table);
  if (notes.length) console.log(`\nChecks: ${notes.join("; ")}.`);
  if (process.env.BENCH_ONLY || QUICK) {
    log("BENCH_ONLY or BENCH_QUICK is set: bench/results.md is left as it was");
  } else {
    const v = versions();
    const report = `# Benchmarks: Rust Worker vs TypeScript twin

Run ${new Date().toISOString()} with \`npm run bench\`. Rust and TypeScript samples alternate (which goes first swaps every run); each figure is the median over its runs with the spread (min–max) beside it, and the Rust / TS column is the median of the runs' own ratios. Targets are issue 22's; a verdict is read off the median.

${table}

Checks: ${notes.join("; ")}.

How each figure is taken:
- upload: \`wrangler deploy --dry-run\` of each Worker's production build (for the catalogue: without the step-tour probe; one build, as the size does not vary between runs); the starter's is templates/starter copied out of the repository and built as a user would. Its TypeScript column is the twin's.
- start-up CPU: \`wrangler check startup\`'s CPU profile of the production build, non-idle sample time (${RUNS} runs).
- step overhead: create-to-complete wall time of a ${STEPS}-step no-op step-tour instance minus that of a 0-step one, divided by ${STEPS} (polled every 25 ms; ${RUNS} runs, each a pair of instances).
- transform: parse and normalisation of ${RECORDS} records (${(RECORDS / 1000).toFixed(0)}k-record JSON array from a loopback source), measured from outside because the Workers clock does not advance during computation: create-to-complete of a one-step instance that transforms the downloaded body ${REPEAT} times, minus that of one that transforms it once, divided by ${REPEAT - 1} (${RUNS} runs).
- status route: autocannon, 32 connections, ${HTTP_SECONDS} s, \`GET /workflows/step-tour/instances/{id}\` of a complete instance with the bearer token (both Workers check it; ${HTTP_RUNS} runs).
- scale: ${SCALE} one-step (\`noop\`) step-tour instances created 50 requests at a time on loopback, polled until every one has ended (at most ${SCALE_DEADLINE_MS / 1000} s; lost: not created, failed, or not ended), with the resident memory of the workerd processes under each Worker's wrangler sampled every 250 ms (${ORDER_RUNS} runs; the peak is over the whole run).
- orders: ${ORDERS} \`order-processing\` instances created at once against the loopback stand-ins, until all are complete (fulfillmentDelay 1 second; ${ORDER_RUNS} runs).

Machine: ${v.machine}. Versions: wrangler ${v.wrangler}, workerd ${v.workerd}, ${v.rustc}, Node ${v.node}.

${readFileSync(path.join(root, "bench/analysis.md"), "utf8").trim()}
`;
    writeFileSync(path.join(root, "bench/results.md"), report);
    log("written to bench/results.md");
  }
  // Its own logs only: bench:profile keeps its profiles in bench/.tmp too.
  rmSync(path.join(root, "bench/.tmp/run"), { recursive: true, force: true });
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
