// `npm run bench`: the Rust Worker against its TypeScript twin (bench/ts-twin), on the
// same local runtime in the same run. Prints one table (Rust, TypeScript, Rust/TS) and
// writes it to bench/results.md with the machine and versions. Figures only: nothing
// here passes or fails.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync, rmSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import autocannon from "autocannon";
import { startStandin } from "../tests/e2e/standin.mjs";
import { copyStarter, startDevServer, root, wrangler, sleep } from "../tests/e2e/devserver.mjs";

const TOKEN = "bench-token";
const twinDir = path.join(root, "bench/ts-twin");
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const STEPS = 200;
const RECORDS = 50_000;
const ORDERS = 200;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const log = (...a) => console.error("bench:", ...a);
const env = { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" };

function uploadSize(cwd, extraEnv = {}) {
  const out = mkdtempSync(path.join(os.tmpdir(), "bench-dry-"));
  const text = execFileSync(wrangler, ["deploy", "--dry-run", "--outdir", out], { cwd, env: { ...env, ...extraEnv }, stdio: ["ignore", "pipe", "pipe"], maxBuffer: 1 << 26 }).toString();
  const m = text.match(/Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/);
  if (!m) throw new Error(`no upload size in: ${text}`);
  return { raw: Number(m[1]), gzip: Number(m[2]) };
}

/// CPU time of the start-up phase, from `wrangler check startup`'s profile: profile
/// time minus the samples spent idle.
function startupCpuMs(cwd) {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), "bench-startup-")), "startup.cpuprofile");
  execFileSync(wrangler, ["check", "startup", "--outfile", file], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  const profile = JSON.parse(readFileSync(file, "utf8"));
  const idle = new Set(profile.nodes.filter((n) => n.callFrame.functionName === "(idle)").map((n) => n.id));
  let busy = 0;
  profile.samples.forEach((id, i) => { if (!idle.has(id)) busy += profile.timeDeltas[i] ?? 0; });
  return busy / 1000;
}

async function call(base, method, urlPath, body) {
  const res = await fetch(`${base}${urlPath}`, {
    method,
    headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

/// Wall time from create to observed completion of one step-tour instance (polled every 25 ms).
async function timeInstance(base, workflow, params) {
  const t0 = performance.now();
  const created = await call(base, "POST", `/workflows/${workflow}/instances`, { params });
  if (created.status !== 201) throw new Error(`create ${workflow} on ${base}: ${created.status} ${JSON.stringify(created.body)}`);
  for (;;) {
    const s = await call(base, "GET", `/workflows/${workflow}/instances/${created.body.id}`);
    if (s.body?.status === "complete") return { ms: performance.now() - t0, output: s.body.output };
    if (["errored", "terminated"].includes(s.body?.status)) throw new Error(`${workflow} ${s.body.status}: ${JSON.stringify(s.body.error)}`);
    await sleep(25);
  }
}

/// What to measure: BENCH_ONLY=steps,transform (any of size, startup, steps, transform,
/// http, orders) runs just those; the default is all of them.
const ONLY = new Set((process.env.BENCH_ONLY ?? "size,startup,steps,transform,http,orders").split(",").map((s) => s.trim()));

/// Runs `sample(server)` RUNS times on each Worker, alternating Rust and TypeScript, so
/// that drift in the machine's load falls on both alike; returns the medians.
async function alternating(servers, sample) {
  const samples = Object.fromEntries(Object.keys(servers).map((k) => [k, []]));
  for (let i = 0; i < RUNS; i++) {
    for (const [name, server] of Object.entries(servers)) samples[name].push(await sample(server, name));
  }
  return Object.fromEntries(Object.entries(samples).map(([k, xs]) => [k, median(xs)]));
}

const stepTour = (actions) => async (server) => (await timeInstance(server.base, "step-tour", { actions })).ms;

async function measureSteps(servers) {
  log("step overhead");
  const empty = await alternating(servers, stepTour([{ noop: { name: "noop", count: 0 } }]));
  const full = await alternating(servers, stepTour([{ noop: { name: "noop", count: STEPS } }]));
  return Object.fromEntries(Object.keys(servers).map((k) => [k, (full[k] - empty[k]) / STEPS]));
}

/// Transforms per step in the long run: the difference between a step that transforms
/// the records REPEAT times and one that transforms them once, divided by REPEAT - 1, is
/// the time of one transform with download, step and polling costs cancelled out.
const REPEAT = 11;

async function measureTransform(servers, standin) {
  log(`transform of ${RECORDS} records`);
  const source = `${standin.url}/source/bench?n=${RECORDS}`;
  const check = {};
  for (const [name, server] of Object.entries(servers)) {
    check[name] = (await timeInstance(server.base, "step-tour", { actions: [{ transform: { name: "t", url: source } }] })).output[0];
  }
  const once = await alternating(servers, stepTour([{ transform: { name: "t", url: source, repeat: 1 } }]));
  const many = await alternating(servers, stepTour([{ transform: { name: "t", url: source, repeat: REPEAT } }]));
  return { check, ms: Object.fromEntries(Object.keys(servers).map((k) => [k, (many[k] - once[k]) / (REPEAT - 1)])) };
}

async function measureHttp(server) {
  log("status route at concurrency 32 for 10 s");
  const created = await call(server.base, "POST", "/workflows/step-tour/instances", { params: { actions: [] } });
  await sleep(1000);
  const load = await autocannon({
    url: `${server.base}/workflows/step-tour/instances/${created.body.id}`,
    connections: 32,
    duration: 10,
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  return { rps: load.requests.average, p50: load.latency.p50, p99: load.latency.p99, non2xx: load.non2xx };
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
  return performance.now() - t0;
}

/// The issue's targets, each read off the table: a figure's own value (`absolute`) or its
/// Rust/TS ratio, with the bound it must stay under (`max`) or over (`min`).
const TARGETS = [
  { figure: "upload, gzip (KiB)", name: "gzip upload", absolute: true, max: 300, unit: " KiB" },
  { figure: "starter upload, gzip (KiB)", name: "starter gzip upload", absolute: true, max: 200, unit: " KiB" },
  { figure: "start-up CPU, median (ms)", name: "start-up CPU", max: 1.5 },
  { figure: "step overhead", name: "step overhead", max: 1.1 },
  { figure: "transform of", name: "transform", max: 0.7 },
  { figure: "status route, c=32", name: "status-route throughput", min: 0.9 },
];

function targetVerdicts(rows, fmt) {
  return TARGETS.flatMap((t) => {
    const row = rows.find(([k]) => k.startsWith(t.figure));
    if (!row) return [];
    const [, rust, ts] = row;
    const value = t.absolute ? rust : rust / ts;
    const shown = t.absolute ? `${fmt(value)}${t.unit}` : `${value.toFixed(2)}× TypeScript`;
    const bound = t.max !== undefined ? `at most ${t.max}${t.absolute ? t.unit : "×"}` : `at least ${t.min}×`;
    const met = t.max !== undefined ? value <= t.max : value >= t.min;
    const by = t.max !== undefined ? value - t.max : t.min - value;
    const miss = t.absolute ? `${fmt(by)}${t.unit} (${((100 * by) / t.max).toFixed(0)}%)` : `${by.toFixed(2)}×`;
    return [`- ${t.name}: ${shown}, target ${bound}: ${met ? "met" : `**missed** by ${miss}`}`];
  });
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
  log("building the Rust Worker");
  execFileSync("bash", ["scripts/build.sh"], { cwd: root, stdio: ["ignore", "inherit", "inherit"] });
  const rows = [];
  const notes = [];
  const row = (figure, pair) => rows.push([figure, pair.rust, pair.ts]);

  if (ONLY.has("size")) {
    log("upload sizes (wrangler deploy --dry-run)");
    const size = { rust: uploadSize(root), ts: uploadSize(twinDir) };
    row("upload, raw (KiB)", { rust: size.rust.raw, ts: size.ts.raw });
    row("upload, gzip (KiB)", { rust: size.rust.gzip, ts: size.ts.gzip });
    // The starter (one workflow, the HTTP API) as a user copies it, built the same way; its
    // TypeScript column is the twin's, the nearest TypeScript Worker there is.
    log("building the starter Worker (templates/starter, copied out)");
    const starter = copyStarter();
    try {
      const built = uploadSize(starter, { CARGO_TARGET_DIR: path.join(root, "target/starter") });
      row("starter upload, raw (KiB)", { rust: built.raw, ts: size.ts.raw });
      row("starter upload, gzip (KiB)", { rust: built.gzip, ts: size.ts.gzip });
    } finally {
      rmSync(starter, { recursive: true, force: true });
    }
  }
  if (ONLY.has("startup")) {
    log("start-up CPU (wrangler check startup)");
    const startup = { rust: [], ts: [] };
    for (let i = 0; i < RUNS; i++) {
      startup.rust.push(startupCpuMs(root));
      startup.ts.push(startupCpuMs(twinDir));
    }
    row("start-up CPU, median (ms)", { rust: median(startup.rust), ts: median(startup.ts) });
  }

  if (["steps", "transform", "http", "orders"].some((k) => ONLY.has(k))) {
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
        servers[name] = await startDevServer({ cwd, migrate, vars, readyPath: "/", log: path.join(root, `bench/.tmp/${name}-wrangler.log`) });
      }
      if (ONLY.has("steps")) row(`step overhead, ${STEPS}-step no-op workflow, median (ms/step)`, await measureSteps(servers));
      if (ONLY.has("transform")) {
        const { check, ms } = await measureTransform(servers, standin);
        row(`transform of ${RECORDS} records, median (ms)`, ms);
        notes.push(`both transforms counted ${check.rust?.records}/${check.ts?.records} records kept and ${check.rust?.dropped}/${check.ts?.dropped} dropped`);
      }
      if (ONLY.has("http")) {
        const http = { rust: await measureHttp(servers.rust), ts: await measureHttp(servers.ts) };
        const pick = (k) => ({ rust: http.rust[k], ts: http.ts[k] });
        row("status route, c=32 10 s (req/s)", pick("rps"));
        row("status route latency p50 (ms)", pick("p50"));
        row("status route latency p99 (ms)", pick("p99"));
        notes.push(`non-2xx answers under load: Rust ${http.rust.non2xx}, TypeScript ${http.ts.non2xx}`);
      }
      if (ONLY.has("orders")) {
        const orders = { rust: await measureOrders(servers.rust, "rust"), ts: await measureOrders(servers.ts, "ts") };
        row(`${ORDERS} concurrent order-processing, end to end (s)`, { rust: orders.rust / 1000, ts: orders.ts / 1000 });
      }
    } finally {
      for (const server of Object.values(servers)) await server.stop();
      standin.closeAll();
      await standin.close();
    }
  }

  const fmt = (x) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(2));
  const verdicts = targetVerdicts(rows, fmt);
  const table = [
    "| figure | Rust | TypeScript | Rust / TS |",
    "| --- | ---: | ---: | ---: |",
    ...rows.map(([k, a, b]) => `| ${k} | ${fmt(a)} | ${fmt(b)} | ${(a / b).toFixed(2)} |`),
  ].join("\n");
  console.log(table);
  if (notes.length) console.log(`\nChecks: ${notes.join("; ")}.`);
  if (verdicts.length) console.log(`\nTargets:\n${verdicts.join("\n")}`);
  if (process.env.BENCH_ONLY) {
    log("BENCH_ONLY is set: bench/results.md is left as it was");
  } else {
    const v = versions();
    const report = `# Benchmarks: Rust Worker vs TypeScript twin

Run ${new Date().toISOString()} with \`npm run bench\` (${RUNS} runs where a median is taken; Rust and TypeScript samples alternate).

${table}

Checks: ${notes.join("; ")}.

Targets (from the benchmarks issue):
${verdicts.join("\n")}

How each figure is taken:
- upload: \`wrangler deploy --dry-run\` of each Worker; the starter's is templates/starter copied out of the repository and built as a user would.
- start-up CPU: \`wrangler check startup\`'s CPU profile, non-idle sample time.
- step overhead: create-to-complete wall time of a ${STEPS}-step no-op step-tour instance minus that of a 0-step one, divided by ${STEPS} (polled every 25 ms).
- transform: parse and normalisation of ${RECORDS} records (${(RECORDS / 1000).toFixed(0)}k-record JSON array from a loopback source), measured from outside because the Workers clock does not advance during computation: create-to-complete of a one-step instance that transforms the downloaded body ${REPEAT} times, minus that of one that transforms it once, divided by ${REPEAT - 1}.
- status route: autocannon, 32 connections, 10 s, \`GET /workflows/step-tour/instances/{id}\` with the bearer token (both Workers check it).
- orders: ${ORDERS} \`order-processing\` instances created at once against the loopback stand-ins, until all are complete (fulfillmentDelay 1 second).

Machine: ${v.machine}. Versions: wrangler ${v.wrangler}, workerd ${v.workerd}, ${v.rustc}, Node ${v.node}.

${readFileSync(path.join(root, "bench/analysis.md"), "utf8").trim()}
`;
    writeFileSync(path.join(root, "bench/results.md"), report);
    log("written to bench/results.md");
  }
  rmSync(path.join(root, "bench/.tmp"), { recursive: true, force: true });
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
