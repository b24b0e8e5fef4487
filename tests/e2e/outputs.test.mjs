// Sensitive and streamed step outputs on the local runtime: a sensitive step's output
// never shows in the history (JSON or SSE), the status or the Worker's log while the
// workflow uses it; a streamed step moves megabytes through the engine's store and reads
// back identical bytes, also after the engine ran the workflow again from its store.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { worker, api, createInstance, getInstance, waitFor, finished, uniqueId, sleep } from "./harness.mjs";
import { root } from "./devserver.mjs";

const historyPath = (workflow, id) => `/workflows/${workflow}/instances/${id}/history`;
const tour = (id, actions) => createInstance("step-tour", { id, params: { actions } });

/// step-tour's generator (`pseudo_random_bytes`): the low byte of each xorshift32 state.
function pseudoRandomBytes(len, seed) {
  let state = seed === 0 ? 1 : seed | 0;
  const bytes = new Uint8Array(len);
  for (let i = 0; i < len; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    bytes[i] = state & 0xff;
  }
  return bytes;
}
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

describe("step outputs", { concurrency: true }, () => {
  it("a sensitive output is absent from the history, its event stream, the status and the log, while the workflow used it", async () => {
    const { standin, d1 } = await worker();
    const tag = uniqueId("private");
    // The params carry the email as typed; only the validate step's output, the
    // sensitive one, holds it trimmed and lower-cased.
    const validated = `${tag}@example.com`;
    const res = await api("POST", "/api/workflow/start", { email: ` ${tag}@EXAMPLE.com `, name: "Grace Hopper" }, { authorization: "" });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const id = res.body.workflowId;
    const done = await waitFor("user-onboarding", id, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));

    // The workflow used the real value.
    assert.deepEqual(d1(`SELECT email FROM users WHERE id = '${done.output.userId}'`), [{ email: validated }]);
    assert.ok(standin.callsTo("/notify/send", (c) => c.body?.email === validated).length >= 1, "the welcome email went to the validated address");

    const history = await api("GET", historyPath("user-onboarding", id));
    assert.equal(history.status, 200);
    const validate = history.body.steps.find((s) => s.name === "validate-user");
    assert.equal(validate?.status, "complete", JSON.stringify(history.body));
    assert.ok(!JSON.stringify(history.body).includes(validated), JSON.stringify(history.body));

    const stream = await api("GET", historyPath("user-onboarding", id), undefined, { accept: "text/event-stream" });
    assert.equal(stream.status, 200);
    const events = stream.body.split("\n\n").map((block) => block.split("\n").find((l) => l.startsWith("data:"))).filter(Boolean).map((l) => JSON.parse(l.slice(5)));
    const completed = events.filter((e) => e.type === "step_completed");
    const validateDone = completed.find((e) => e.step?.name === "validate-user");
    assert.equal(validateDone?.output, "[REDACTED]", JSON.stringify(validateDone));
    assert.equal(completed.find((e) => e.step?.name === "create-profile")?.output, done.output.userId, "other steps show their outputs");
    assert.ok(!stream.body.includes(validated), "the event stream never carries the validated email");

    const status = await getInstance("user-onboarding", id);
    assert.ok(!JSON.stringify(status.body).includes(validated), JSON.stringify(status.body));
    const log = await readFile(path.join(root, "tests/.tmp/wrangler.log"), "utf8");
    assert.ok(!log.includes(validated), "the Worker's log never prints it");
    await api("POST", `/workflows/user-lifecycle/instances/lifecycle-${done.output.userId}/terminate`);
  });

  it("a streamed step moves 6 MiB through the engine and reads back identical bytes", async () => {
    const id = uniqueId("stream");
    const bytes = 6 * 1024 * 1024 + 3;
    assert.equal((await tour(id, [{ stream: { name: "blob", bytes, seed: 11 } }])).status, 201);
    const done = await waitFor("step-tour", id, finished, { timeoutMs: 120_000 });
    assert.equal(done.status, "complete", JSON.stringify(done));
    const expected = sha256(pseudoRandomBytes(bytes, 11));
    assert.deepEqual(done.output, [{ name: "blob", bytes, firstRunSha256: expected, sha256: expected, madeInThisRun: true }]);
  });

  it("after a pause and resume the engine runs the workflow again and the stream step's 5 MiB come back from its store intact", async () => {
    const id = uniqueId("stream-replay");
    const bytes = 5 * 1024 * 1024 + 1;
    assert.equal((await tour(id, [{ stream: { name: "blob", bytes, seed: 12345, sleep: "8 seconds" } }])).status, 201);
    // Pause while it sleeps: the sleep throws the engine's pause, ending this run of the workflow.
    const sleeping = (h) => h.steps?.some((s) => s.name === "blob sleep" && s.status === "running");
    for (let i = 0; ; i++) {
      const history = await api("GET", historyPath("step-tour", id));
      if (history.status === 200 && sleeping(history.body)) break;
      assert.ok(i < 240, `never reached the sleep: ${JSON.stringify(history.body)}`);
      await sleep(250);
    }
    assert.equal((await api("POST", `/workflows/step-tour/instances/${id}/pause`)).status, 200);
    await waitFor("step-tour", id, (b) => b.status === "paused");
    assert.equal((await api("POST", `/workflows/step-tour/instances/${id}/resume`)).status, 200);
    const done = await waitFor("step-tour", id, finished, { timeoutMs: 120_000 });
    assert.equal(done.status, "complete", JSON.stringify(done));
    const expected = sha256(pseudoRandomBytes(bytes, 12345));
    const [result] = done.output;
    assert.equal(result.madeInThisRun, false, "the output comes from a later run: the stream step answered from the store");
    assert.equal(result.bytes, bytes);
    assert.equal(result.firstRunSha256, expected, "the run that made the bytes read back what it made");
    assert.equal(result.sha256, expected, "the later run read the same bytes from the engine's store");
  });

  it("a stream action over its 8 MiB bound is refused before an instance exists", async () => {
    const id = uniqueId("stream-big");
    const res = await tour(id, [{ stream: { name: "blob", bytes: 8 * 1024 * 1024 + 1 } }]);
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.code, "invalid_params");
    assert.match(res.body.error.message, /actions\[0\]\.stream\.bytes/);
    assert.equal((await getInstance("step-tour", id)).status, 404);
  });
});
