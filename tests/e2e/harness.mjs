// Runs the built Worker as users do: `wrangler dev` with the real wrangler.jsonc on
// the local workerd runtime, with the service URLs pointed at loopback stand-ins.
// One Worker and one stand-in serve every test file (node --test runs them in one
// process with --experimental-test-isolation=none).
import { after } from "node:test";
import http from "node:http";
import path from "node:path";
import { startStandin } from "./standin.mjs";
import { startDevServer, root, sleep } from "./devserver.mjs";

/// The API token and webhook secret the test Worker runs with.
export const TOKEN = "test-token";
export const WEBHOOK_SECRET = "whsec_dGVzdC13ZWJob29rLWtleS0xMjM0NTY3ODkwYWJjZGVm";

async function start() {
  const standin = await startStandin();
  const server = await startDevServer({
    migrate: true,
    readyPath: "/health",
    log: path.join(root, "tests/.tmp/wrangler.log"),
    vars: {
      INVENTORY_URL: `${standin.url}/inventory`,
      PAYMENTS_URL: `${standin.url}/payments`,
      SHIPPING_URL: `${standin.url}/shipping`,
      NOTIFY_URL: `${standin.url}/notify`,
      API_TOKEN: TOKEN,
      WEBHOOK_SECRET,
      // Callback deliveries retry twice from 1 s here (3 attempts in about 3 s), not the
      // default 10 times from 10 s, so a receiver that never answers fails within a test.
      CALLBACK_RETRY_LIMIT: "2",
      CALLBACK_RETRY_DELAY: "1 second",
      ALLOW_PRIVATE_HOSTS: "127.0.0.1",
      ENABLE_STEP_TOUR: "true",
      ENABLE_RAW_JOBS: "true",
      // Off in wrangler.jsonc (deployed.test.mjs checks that); the demo's tests need them.
      ENABLE_DEMO_ROUTES: "true",
      TEST_FLAKY_JOB_ATTEMPTS: "2",
    },
  });
  return {
    base: server.base,
    standin,
    /// Runs SQL on the Worker's local D1 (the same persisted state wrangler dev uses).
    d1(sql) {
      const out = server.wranglerWithState(["d1", "execute", "DB", "--json", "--command", sql]);
      return JSON.parse(out.toString())[0].results;
    },
    /// Writes a key of the Worker's local KV namespace SETTINGS.
    kvPut(key, value) {
      server.wranglerWithState(["kv", "key", "put", key, value, "--binding", "SETTINGS"]);
    },
    /// Reads a key of the Worker's local KV namespace SETTINGS (null when absent).
    kvGet(key) {
      try {
        return server.wranglerWithState(["kv", "key", "get", key, "--binding", "SETTINGS"]).toString();
      } catch {
        return null;
      }
    },
    async stop() {
      await server.stop();
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
/// Sent with node:http rather than fetch: fetch gives up on a connection it could not
/// complete within 10 s, and the harness's d1() blocks this process while wrangler runs,
/// so a request of a concurrent test would fail for no fault of the Worker's.
export async function api(method, urlPath, body, headers = {}) {
  const { base } = await worker();
  const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
  const sent = { "content-type": "application/json", authorization: `Bearer ${TOKEN}`, ...headers };
  const res = await new Promise((resolve, reject) => {
    // A fresh connection per request (agent: false): a kept-alive one the Worker closed
    // while this process was blocked would hang up on reuse.
    const options = { method, agent: false, headers: Object.fromEntries(Object.entries(sent).filter(([, v]) => v !== "")) };
    const req = http.request(`${base}${urlPath}`, options, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(payload);
  });
  let json = null;
  try { json = res.text ? JSON.parse(res.text) : null; } catch { json = res.text; }
  const responseHeaders = new Headers(Object.entries(res.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : String(v)]));
  return { status: res.status, headers: responseHeaders, body: json };
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

/// The instance life in a key of the catalogue's (`order-payment-{id}@{createdAtMs}`,
/// `{id}@{createdAtMs}:{step}:{count}`): `{id}@{createdAtMs}`, checked to be that id's.
export function lifeIn(key, id, prefix = "") {
  const match = new RegExp(`^${prefix}(${id}@\\d+)(:|$)`).exec(key ?? "");
  if (!match) throw new Error(`${JSON.stringify(key)} is not a key of instance ${id} (${prefix}{id}@{createdAtMs}…)`);
  return match[1];
}
