// The rules every outbound call keeps, on the real runtime: redirects are never
// followed, answers are read up to a cap while they stream (never whole), and every
// POST with a side effect carries an Idempotency-Key (the stand-ins refuse one without).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { readFileSync } from "node:fs";
import { worker, api, createInstance, waitFor, finished, uniqueId } from "./harness.mjs";

const tour = (id, actions) => createInstance("step-tour", { id, params: { actions } });
// Retries the steps would get if a failure were retryable: the tests prove there are none.
const retries = { limit: 3, delay: "1 second", backoff: "constant" };
const MiB = 1024 * 1024;
// What of a body nobody reads still leaves the stand-in: its socket's send buffer (Linux
// grows it up to tcp_wmem's maximum, 4 MiB by default) and, on the receiving side, the
// socket's and the runtime's buffers before the Worker sees the headers (2 MiB is ample;
// about 0.5 MiB is seen). A Worker that read up to the 10 MiB cap moves more than either.
const UNREAD_BODY_BYTES = Math.min(10 * MiB, sendBufferMax() + 2 * MiB);
function sendBufferMax() {
  try {
    return Number(readFileSync("/proc/sys/net/ipv4/tcp_wmem", "utf8").trim().split(/\s+/)[2]) || 8 * MiB;
  } catch {
    return 8 * MiB;
  }
}

describe("outbound calls", { concurrency: true }, () => {
  it("a redirect is not followed: the step fails at once with the 3xx, and its target is never requested", async () => {
    const { standin } = await worker();
    const id = uniqueId("redirect");
    assert.equal((await tour(id, [{ call: { name: "moved", url: `${standin.url}/redirect/${id}`, retries } }])).status, 201);
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "errored", JSON.stringify(done));
    assert.equal(done.error.name, "NonRetryableError");
    assert.equal(done.error.message, `service answered 302 (redirects are not followed; it points to ${standin.url}/call/${id}-target)`);
    assert.equal(standin.callsTo(`/redirect/${id}`).length, 1, "not retried");
    assert.equal(standin.callsTo(`/call/${id}-target`).length, 0, "the target was never requested");
  });

  it("an answer over the cap, streamed without a length, fails the step unread; the Worker and other instances carry on", async () => {
    const { standin } = await worker();
    const id = uniqueId("huge");
    const other = uniqueId("beside");
    const total = 48 * MiB;
    const [huge, beside] = await Promise.all([
      tour(id, [{ call: { name: "huge", url: `${standin.url}/big/${id}?bytes=${total}`, retries } }]),
      tour(other, [{ call: { name: "small", url: `${standin.url}/call/${other}` } }]),
    ]);
    assert.equal(huge.status, 201);
    assert.equal(beside.status, 201);
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "errored", JSON.stringify(done));
    assert.equal(done.error.name, "NonRetryableError");
    assert.equal(done.error.message, `service answered 200 with a body over the ${MiB}-byte limit; it was not read further`);
    const [call] = standin.callsTo(`/big/${id}`);
    assert.equal(standin.callsTo(`/big/${id}`).length, 1, "not retried");
    assert.equal(call.headers["content-length"], undefined);
    await waitFor("step-tour", id, () => call.complete !== undefined);
    assert.ok(!call.complete && call.sent < total / 2, `the Worker stopped reading: ${call.sent} of ${total} bytes written`);
    const side = await waitFor("step-tour", other, finished);
    assert.equal(side.status, "complete", JSON.stringify(side));
    assert.equal((await api("GET", "/health")).status, 200);
  });

  it("a data source over MAX_SOURCE_BYTES (10 MiB by default) fails the download; a declared length over it is not read at all", async () => {
    const { standin } = await worker();
    const id = uniqueId("bigsource");
    const over = 10 * MiB + 1;
    const actions = [
      { download: { name: "fits", url: `${standin.url}/big/${id}-fits?bytes=${10 * MiB}` } },
      { download: { name: "declared", url: `${standin.url}/big/${id}-declared?bytes=${48 * MiB}&declare=1` } },
    ];
    const declared = uniqueId("declared");
    assert.equal((await tour(id, actions)).status, 201);
    assert.equal((await tour(declared, [{ download: { name: "chunked", url: `${standin.url}/big/${declared}?bytes=${over}` } }])).status, 201);
    const done = await waitFor("step-tour", id, finished, { timeoutMs: 90_000 });
    assert.equal(done.status, "errored", JSON.stringify(done));
    const message = `source answered 200 with a body over the ${10 * MiB}-byte limit (set by MAX_SOURCE_BYTES); it was not read further`;
    assert.equal(done.error.message, message);
    assert.equal(standin.callsTo(`/big/${id}-fits`)[0].complete, true, "exactly the cap is read whole");
    const [early] = standin.callsTo(`/big/${id}-declared`);
    await waitFor("step-tour", id, () => early.complete !== undefined);
    // Refused on its Content-Length, before reading: what left the stand-in is at most what
    // the buffers between hold unread, below the 10 MiB a Worker reading up to the cap takes.
    assert.ok(!early.complete, `${early.written} of ${48 * MiB} bytes written`);
    assert.ok(early.written < UNREAD_BODY_BYTES, `refused on its Content-Length, yet ${early.written} bytes were written`);
    const chunked = await waitFor("step-tour", declared, finished, { timeoutMs: 90_000 });
    assert.equal(chunked.status, "errored", JSON.stringify(chunked));
    assert.equal(chunked.error.message, message);
    // The measure sees a read: without a length, the Worker read up to the cap, so at least
    // that much was written.
    const [read] = standin.callsTo(`/big/${declared}`);
    await waitFor("step-tour", declared, () => read.complete !== undefined);
    assert.ok(read.written >= 10 * MiB, `${read.written} bytes written`);
  });

  it("the stand-ins refuse a POST without an Idempotency-Key, so every passing POST in these tests carried one", async () => {
    const { standin } = await worker();
    const post = (headers) =>
      new Promise((resolve, reject) => {
        const req = http.request(`${standin.url}/notify/send`, { method: "POST", headers: { "content-type": "application/json", ...headers } }, (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode));
        });
        req.on("error", reject);
        req.end("{}");
      });
    assert.equal(await post({}), 400);
    assert.equal(await post({ "idempotency-key": "k" }), 200);
  });
});
