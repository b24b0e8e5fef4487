// The benchmark tools' HTTP client for a Worker under `wrangler dev` (bench/run.mjs and
// bench/profile-steps.mjs): one authorised JSON call, and one workflow instance timed from
// its create to its observed completion.
import { sleep } from "../tests/e2e/devserver.mjs";

/// The API token both Workers are started with.
export const TOKEN = "bench-token";

/// How often a timed instance's status is polled (BENCH_POLL_MS, 25 by default). The
/// polls run in the measured Worker's own isolate: a slower poll shows what they cost it.
export const POLL_MS = Number(process.env.BENCH_POLL_MS ?? 25);

/// One call with the token; the answer's status and JSON body (null if none).
export async function call(base, method, urlPath, body) {
  const res = await fetch(`${base}${urlPath}`, {
    method,
    headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

/// Wall time from create to observed completion of one instance of `workflow` (its status
/// polled every POLL_MS), and its output. Throws if it errors or is terminated.
export async function timeInstance(base, workflow, params) {
  const t0 = performance.now();
  const created = await call(base, "POST", `/workflows/${workflow}/instances`, { params });
  if (created.status !== 201) throw new Error(`create ${workflow} on ${base}: ${created.status} ${JSON.stringify(created.body)}`);
  for (;;) {
    const s = await call(base, "GET", `/workflows/${workflow}/instances/${created.body.id}`);
    if (s.body?.status === "complete") return { ms: performance.now() - t0, output: s.body.output };
    if (["errored", "terminated"].includes(s.body?.status)) throw new Error(`${workflow} ${s.body.status}: ${JSON.stringify(s.body.error)}`);
    await sleep(POLL_MS);
  }
}
