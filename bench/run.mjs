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
import { startDevServer, root, wrangler, sleep } from "../tests/e2e/devserver.mjs";

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

function uploadSize(cwd) {
  const out = mkdtempSync(path.join(os.tmpdir(), "bench-dry-"));
  const text = execFileSync(wrangler, ["deploy", "--dry-run", "--outdir", out], { cwd, env, stdio: ["ignore", "pipe", "pipe"] }).toString();
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
  if (created.status !== 201) throw new Error(`create ${workflow}: ${created.status} ${JSON.stringify(created.body)}`);
  for (;;) {
    const s = await call(base, "GET", `/workflows/${workflow}/instances/${created.body.id}`);
    if (s.body?.status === "complete") return { ms: performance.now() - t0, output: s.body.output };
    if (["errored", "terminated"].includes(s.body?.status)) throw new Error(`${workflow} ${s.body.status}: ${JSON.stringify(s.body.error)}`);
    await sleep(25);
  }
}

async function medianTime(base, params) {
  const times = [];
  for (let i = 0; i < RUNS; i++) times.push((await timeInstance(base, "step-tour", params)).ms);
  return median(times);
}

async function measureRuntime(name, base, standin) {
  log(`${name}: step overhead`);
  const empty = await medianTime(base, { actions: [{ noop: { name: "noop", count: 0 } }] });
  const full = await medianTime(base, { actions: [{ noop: { name: "noop", count: STEPS } }] });
  const stepMs = (full - empty) / STEPS;

  log(`${name}: transform of ${RECORDS} records`);
  const source = `${standin.url}/source/bench?n=${RECORDS}`;
  const check = await timeInstance(base, "step-tour", { actions: [{ transform: { name: "t", url: source } }] });
  const download = await medianTime(base, { actions: [{ download: { name: "d", url: source } }] });
  const transform = await medianTime(base, { actions: [{ transform: { name: "t", url: source } }] });

  log(`${name}: status route at concurrency 32 for 10 s`);
  const created = await call(base, "POST", "/workflows/step-tour/instances", { params: { actions: [] } });
  await sleep(1000);
  const load = await autocannon({
    url: `${base}/workflows/step-tour/instances/${created.body.id}`,
    connections: 32,
    duration: 10,
    headers: { authorization: `Bearer ${TOKEN}` },
  });

  log(`${name}: ${ORDERS} concurrent order-processing instances`);
  const t0 = performance.now();
  const ids = await Promise.all(
    Array.from({ length: ORDERS }, async (_, i) => {
      const orderId = `bench-${name}-${i}-${Date.now()}`;
      const params = { orderId, userId: `u-${i}`, items: [{ productId: "p-1", quantity: 1 }], fulfillmentDelay: "1 second" };
      const r = await call(base, "POST", "/workflows/order-processing/instances", { id: orderId, params });
      if (r.status !== 201) throw new Error(`order create: ${r.status} ${JSON.stringify(r.body)}`);
      return orderId;
    }),
  );
  const pending = new Set(ids);
  while (pending.size) {
    await Promise.all([...pending].map(async (id) => {
      const s = await call(base, "GET", `/workflows/order-processing/instances/${id}`);
      if (s.body?.status === "complete") pending.delete(id);
      else if (["errored", "terminated"].includes(s.body?.status)) throw new Error(`order ${id} ${s.body.status}`);
    }));
    if (pending.size) await sleep(250);
  }
  const ordersMs = performance.now() - t0;

  return {
    stepMs,
    transformMs: transform - download,
    transformCheck: check.output[0],
    rps: load.requests.average,
    p50: load.latency.p50,
    p99: load.latency.p99,
    non2xx: load.non2xx,
    ordersMs,
  };
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

  log("upload sizes (wrangler deploy --dry-run)");
  const size = { rust: uploadSize(root), ts: uploadSize(twinDir) };
  log("start-up CPU (wrangler check startup)");
  const startup = { rust: [], ts: [] };
  for (let i = 0; i < RUNS; i++) {
    startup.rust.push(startupCpuMs(root));
    startup.ts.push(startupCpuMs(twinDir));
  }

  const standin = await startStandin();
  const vars = (extra = {}) => ({
    INVENTORY_URL: `${standin.url}/inventory`,
    PAYMENTS_URL: `${standin.url}/payments`,
    SHIPPING_URL: `${standin.url}/shipping`,
    NOTIFY_URL: `${standin.url}/notify`,
    API_TOKEN: TOKEN,
    ...extra,
  });
  const results = {};
  for (const [name, cwd, migrate] of [["rust", root, true], ["ts", twinDir, false]]) {
    const server = await startDevServer({ cwd, migrate, vars: vars(), readyPath: "/", log: path.join(root, `bench/.tmp/${name}-wrangler.log`) });
    try {
      results[name] = await measureRuntime(name, server.base, standin);
    } finally {
      await server.stop();
    }
  }
  standin.closeAll();
  await standin.close();

  const r = results.rust, t = results.ts;
  const rows = [
    ["upload, raw (KiB)", size.rust.raw, size.ts.raw],
    ["upload, gzip (KiB)", size.rust.gzip, size.ts.gzip],
    ["start-up CPU, median (ms)", median(startup.rust), median(startup.ts)],
    [`step overhead, ${STEPS}-step no-op workflow (ms/step)`, r.stepMs, t.stepMs],
    [`transform of ${RECORDS} records, median (ms)`, r.transformMs, t.transformMs],
    ["status route, c=32 10 s (req/s)", r.rps, t.rps],
    ["status route latency p50 (ms)", r.p50, t.p50],
    ["status route latency p99 (ms)", r.p99, t.p99],
    [`${ORDERS} concurrent order-processing, end to end (s)`, r.ordersMs / 1000, t.ordersMs / 1000],
  ];
  const fmt = (x) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(2));
  const table = [
    "| figure | Rust | TypeScript | Rust / TS |",
    "| --- | ---: | ---: | ---: |",
    ...rows.map(([k, a, b]) => `| ${k} | ${fmt(a)} | ${fmt(b)} | ${(a / b).toFixed(2)} |`),
  ].join("\n");
  const v = versions();
  const report = `# Benchmarks: Rust Worker vs TypeScript twin

Run ${new Date().toISOString()} with \`npm run bench\` (${RUNS} runs where a median is taken).

${table}

Checks: both transforms counted ${r.transformCheck?.records}/${t.transformCheck?.records} records kept and ${r.transformCheck?.dropped}/${t.transformCheck?.dropped} dropped; non-2xx answers under load: Rust ${r.non2xx}, TypeScript ${t.non2xx}.

How each figure is taken:
- upload: \`wrangler deploy --dry-run\` of each Worker.
- start-up CPU: \`wrangler check startup\`'s CPU profile, non-idle sample time.
- step overhead: create-to-complete wall time of a ${STEPS}-step no-op step-tour instance minus that of a 0-step one, divided by ${STEPS} (polled every 25 ms).
- transform: create-to-complete of a one-step instance that downloads and normalises ${RECORDS} records from a loopback source, minus that of one that only downloads them (the Workers clock does not advance during computation, so it is measured from outside).
- status route: autocannon, 32 connections, 10 s, \`GET /workflows/step-tour/instances/{id}\` with the bearer token (both Workers check it).
- orders: ${ORDERS} \`order-processing\` instances created at once against the loopback stand-ins, until all are complete (fulfillmentDelay 1 second).

Machine: ${v.machine}. Versions: wrangler ${v.wrangler}, workerd ${v.workerd}, ${v.rustc}, Node ${v.node}.
`;
  console.log(table);
  writeFileSync(path.join(root, "bench/results.md"), report);
  log("written to bench/results.md");
  rmSync(path.join(root, "bench/.tmp"), { recursive: true, force: true });
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
