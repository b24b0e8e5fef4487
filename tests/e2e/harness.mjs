// Runs the built Worker as users do: `wrangler dev` with the real wrangler.jsonc on
// the local workerd runtime, with the service URLs pointed at loopback stand-ins.
// One Worker and one stand-in serve every test file (node --test runs them in one
// process with --experimental-test-isolation=none).
import { after } from "node:test";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, createWriteStream } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startStandin } from "./standin.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// The API token and webhook secret the test Worker runs with.
export const TOKEN = "test-token";
export const WEBHOOK_SECRET = "whsec_dGVzdC13ZWJob29rLWtleS0xMjM0NTY3ODkwYWJjZGVm";

async function start() {
  const standin = await startStandin();
  const port = await freePort();
  const inspectorPort = await freePort();
  const persist = mkdtempSync(path.join(os.tmpdir(), "rust-workflows-e2e-"));
  mkdirSync(path.join(root, "tests/.tmp"), { recursive: true });
  const log = createWriteStream(path.join(root, "tests/.tmp/wrangler.log"));
  const vars = {
    INVENTORY_URL: `${standin.url}/inventory`,
    PAYMENTS_URL: `${standin.url}/payments`,
    SHIPPING_URL: `${standin.url}/shipping`,
    NOTIFY_URL: `${standin.url}/notify`,
    API_TOKEN: TOKEN,
    WEBHOOK_SECRET,
    ALLOW_INSECURE_CALLBACKS: "true",
    ENABLE_RAW_JOBS: "true",
    TEST_FLAKY_JOB_ATTEMPTS: "2",
  };
  const wrangler = path.join(root, "node_modules/.bin/wrangler");
  execFileSync(wrangler, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persist], {
    cwd: root,
    env: { ...process.env, CI: "true" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const args = [
    "dev", "--port", String(port), "--ip", "127.0.0.1", "--inspector-port", String(inspectorPort),
    "--persist-to", persist, "--log-level", "info",
    ...Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
  ];
  const child = spawn(wrangler, args, {
    cwd: root,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  let exited = null;
  child.on("exit", (code) => { exited = code; });
  process.on("exit", () => child.kill("SIGKILL"));

  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (exited !== null) throw new Error(`wrangler dev exited with ${exited}; see tests/.tmp/wrangler.log`);
    if (Date.now() > deadline) throw new Error("wrangler dev did not answer /health within 180 s; see tests/.tmp/wrangler.log");
    try {
      const res = await fetch(`${base}/health`);
      if (res.ok) break;
    } catch {}
    await sleep(250);
  }
  return {
    base,
    standin,
    /// Runs SQL on the Worker's local D1 (the same persisted state wrangler dev uses).
    d1(sql) {
      const out = execFileSync(wrangler, ["d1", "execute", "DB", "--local", "--persist-to", persist, "--json", "--command", sql], {
        cwd: root,
        env: { ...process.env, CI: "true" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      return JSON.parse(out.toString())[0].results;
    },
    /// Reads a key of the Worker's local KV namespace SETTINGS (null when absent).
    kvGet(key) {
      try {
        return execFileSync(wrangler, ["kv", "key", "get", key, "--binding", "SETTINGS", "--local", "--persist-to", persist], {
          cwd: root,
          env: { ...process.env, CI: "true" },
          stdio: ["ignore", "pipe", "pipe"],
        }).toString();
      } catch {
        return null;
      }
    },
    async stop() {
      const gone = new Promise((r) => (exited !== null ? r() : child.once("exit", r)));
      child.kill("SIGTERM");
      await Promise.race([gone, sleep(5000)]);
      if (exited === null) child.kill("SIGKILL");
      standin.closeAll();
      await standin.close();
    },
  };
}

let started;
export function worker() {
  started ??= start();
  return started;
}

// Runs once, after every test file (they share one process): stop the Worker and stand-in.
after(async () => {
  if (started) await (await started).stop();
});

/// One request to the Worker, with the API token unless `headers` sets authorization.
export async function api(method, urlPath, body, headers = {}) {
  const { base } = await worker();
  const res = await fetch(`${base}${urlPath}`, {
    method,
    headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}`, ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = text; }
  return { status: res.status, headers: res.headers, body: json };
}

export const createInstance = (workflow, body) => api("POST", `/workflows/${workflow}/instances`, body);
export const getInstance = (workflow, id) => api("GET", `/workflows/${workflow}/instances/${id}`);

/// Polls the status route until `done(body)` holds; fails with the last status seen.
export async function waitFor(workflow, id, done, { timeoutMs = 60_000, intervalMs = 250 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await getInstance(workflow, id);
    if (last.status === 200 && done(last.body)) return last.body;
    await sleep(intervalMs);
  }
  throw new Error(`instance ${workflow}/${id} did not reach the expected state in ${timeoutMs} ms; last: ${JSON.stringify(last?.body)}`);
}

export const finished = (b) => ["complete", "errored", "terminated"].includes(b.status);
export const uniqueId = (prefix) => `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
export { sleep };
