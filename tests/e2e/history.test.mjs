// Watching instances on the local runtime: the JSON step history, and the live
// Server-Sent Events stream with Last-Event-ID resumption.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { worker, api, createInstance, getInstance, waitFor, finished, uniqueId, TOKEN } from "./harness.mjs";

const order = (orderId, fulfillmentDelay = "1 second") => ({
  orderId,
  userId: `user-${orderId}`,
  items: [{ productId: "p-1", quantity: 1 }],
  fulfillmentDelay,
});
const historyPath = (workflow, id) => `/workflows/${workflow}/instances/${id}/history`;

/// Opens the event stream and reads it: `onEvent(event)` sees each event as it arrives
/// (`{id, event, data, receivedAt}`); returning false stops reading (the connection is
/// dropped). Resolves with the events and whether the server closed the stream.
async function readStream(workflow, id, { lastEventId, onEvent = () => true, timeoutMs = 90_000 } = {}) {
  const { base } = await worker();
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const headers = { authorization: `Bearer ${TOKEN}`, accept: "text/event-stream" };
  if (lastEventId !== undefined) headers["last-event-id"] = String(lastEventId);
  const res = await fetch(`${base}${historyPath(workflow, id)}`, { headers, signal: controller.signal });
  assert.equal(res.status, 200, await (res.status === 200 ? "" : res.text()));
  assert.match(res.headers.get("content-type"), /^text\/event-stream/);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const events = [];
  let buffer = "";
  let closedByServer = false;
  try {
    outer: for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        closedByServer = true;
        break;
      }
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = {};
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue; // a comment (keep-alive)
          const colon = line.indexOf(":");
          fields[line.slice(0, colon)] = line.slice(colon + 1).replace(/^ /, "");
        }
        if (fields.data === undefined) continue;
        const event = { id: fields.id === undefined ? undefined : Number(fields.id), event: fields.event, data: JSON.parse(fields.data), receivedAt: Date.now() };
        events.push(event);
        if ((await onEvent(event)) === false) {
          controller.abort();
          break outer;
        }
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") throw e;
  } finally {
    clearTimeout(timer);
  }
  return { events, closedByServer };
}

describe("watching an instance", { concurrency: true }, () => {
  it("the history of a finished order lists its steps in order with attempts (a payment that fails twice shows 3)", async () => {
    const { standin } = await worker();
    const orderId = uniqueId("hist");
    standin.failNext(`payments:${orderId}`, 2);
    assert.equal((await createInstance("order-processing", { id: orderId, params: order(orderId) })).status, 201);
    assert.equal((await waitFor("order-processing", orderId, finished, { timeoutMs: 90_000 })).status, "complete");
    const res = await api("GET", historyPath("order-processing", orderId));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.match(res.headers.get("content-type"), /application\/json/);
    const h = res.body;
    assert.equal(h.id, orderId);
    assert.equal(h.status, "complete");
    assert.equal(h.truncated, false);
    assert.deepEqual(h.steps.map((s) => [s.name, s.type, s.status]), [
      ["validate-inventory", "do", "complete"],
      ["process-payment", "do", "complete"],
      ["wait-before-fulfillment", "sleep", "complete"],
      ["create-shipment", "do", "complete"],
      ["send-confirmation", "do", "complete"],
    ]);
    const attempts = Object.fromEntries(h.steps.filter((s) => s.type === "do").map((s) => [s.name, s.attempts]));
    assert.deepEqual(attempts, { "validate-inventory": 1, "process-payment": 3, "create-shipment": 1, "send-confirmation": 1 });
    assert.equal(standin.callsTo("/payments/charge", (c) => c.body?.orderId === orderId).length, 3, "the stand-in saw the same three attempts");
    for (let i = 0; i < h.steps.length; i++) {
      const s = h.steps[i];
      assert.equal(s.count, 1);
      assert.ok(s.endedAt >= s.startedAt, JSON.stringify(s));
      if (i > 0) assert.ok(s.startedAt >= h.steps[i - 1].startedAt, "in start order");
    }
    assert.equal(h.steps[2].durationMs, 1000);
    assert.ok(!JSON.stringify(h).includes("tx-"), "a history carries no step outputs");
  });

  it("a failing step shows its error and attempts; a running instance's history answers with the steps so far", async () => {
    const id = uniqueId("hist-fail");
    assert.equal((await createInstance("step-tour", { id, params: { actions: [{ nonRetryable: { name: "refuse", message: "card declined" } }] } })).status, 201);
    assert.equal((await waitFor("step-tour", id, finished)).status, "errored");
    const failed = (await api("GET", historyPath("step-tour", id))).body;
    assert.equal(failed.status, "errored");
    assert.deepEqual(failed.error, { name: "NonRetryableError", message: "card declined" });
    assert.equal(failed.steps.length, 1);
    assert.equal(failed.steps[0].status, "errored");
    assert.equal(failed.steps[0].attempts, 1);
    assert.equal(failed.steps[0].error.message, "card declined");

    const running = uniqueId("hist-run");
    const params = { actions: [{ parallel: { name: "first", count: 1 } }, { sleep: { name: "long", duration: "10 minutes" } }] };
    assert.equal((await createInstance("step-tour", { id: running, params })).status, 201);
    await waitFor("step-tour", running, (b) => b.status === "running");
    let live;
    for (let i = 0; i < 40; i++) {
      live = (await api("GET", historyPath("step-tour", running))).body;
      if (live.steps.some((s) => s.name === "long")) break;
    }
    assert.equal(live.status, "running");
    assert.deepEqual(live.steps.map((s) => [s.name, s.type, s.status]), [["first 0", "do", "complete"], ["long", "sleep", "running"]]);
    assert.equal(live.steps[1].durationMs, 600_000);
    assert.equal((await api("POST", `/workflows/step-tour/instances/${running}/terminate`)).status, 200);
  });

  it("an SSE client sees a running order's steps arrive live, and the stream closes when it completes", async () => {
    const orderId = uniqueId("sse");
    assert.equal((await createInstance("order-processing", { id: orderId, params: order(orderId, "3 seconds") })).status, 201);
    let statusWhenSleepStarted;
    const { events, closedByServer } = await readStream("order-processing", orderId, {
      onEvent: async (e) => {
        if (e.event === "sleep_started") statusWhenSleepStarted = (await getInstance("order-processing", orderId)).body.status;
        return true;
      },
    });
    assert.ok(closedByServer, "the server closed the stream");
    assert.ok(["running", "waiting"].includes(statusWhenSleepStarted), `the sleep's start arrived while the order ran (status ${statusWhenSleepStarted})`);
    const last = events.at(-1);
    assert.equal(last.event, "workflow_completed");
    assert.equal(last.data.output.status, "completed");
    for (const e of events) {
      assert.equal(e.data.type, e.event);
      assert.equal(e.data.eventId, e.id);
    }
    for (let i = 1; i < events.length; i++) assert.ok(events[i].id > events[i - 1].id, "ids increase");
    const started = events.filter((e) => e.event === "step_started").map((e) => e.data.step.name);
    assert.deepEqual(started, ["validate-inventory", "process-payment", "create-shipment", "send-confirmation"]);
    const sleep = events.find((e) => e.event === "sleep_started");
    assert.deepEqual(sleep.data.step, { name: "wait-before-fulfillment", count: 1 });
    assert.equal(sleep.data.durationMs, 3000);
    // Live: the shipment's start reached the client after the sleep, not in one burst at the end.
    const shipment = events.find((e) => e.event === "step_started" && e.data.step.name === "create-shipment");
    assert.ok(shipment.receivedAt - sleep.receivedAt >= 2000, `received ${shipment.receivedAt - sleep.receivedAt} ms apart`);
  });

  it("a reconnect with Last-Event-ID resumes without duplicates and without gaps", async () => {
    const { standin } = await worker();
    const id = uniqueId("resume");
    const params = { actions: [
      { call: { name: "one", url: `${standin.url}/call/${id}-one` } },
      { sleep: { name: "pause", duration: "2 seconds" } },
      { parallel: { name: "two", count: 3 } },
    ] };
    assert.equal((await createInstance("step-tour", { id, params })).status, 201);
    // First connection: drop it once the sleep has started.
    const first = await readStream("step-tour", id, { onEvent: (e) => e.event !== "sleep_started" });
    assert.equal(first.closedByServer, false);
    const lastSeen = first.events.at(-1).id;
    const second = await readStream("step-tour", id, { lastEventId: lastSeen });
    assert.ok(second.closedByServer);
    assert.ok(second.events.length > 0 && second.events[0].id > lastSeen);
    // Against one uninterrupted replay of the whole history.
    const whole = await readStream("step-tour", id);
    assert.ok(whole.closedByServer);
    const key = (e) => `${e.id} ${e.event} ${e.data.stepName ?? ""}`;
    assert.deepEqual([...first.events, ...second.events].map(key), whole.events.map(key));
    assert.equal(whole.events.at(-1).event, "workflow_completed");
    // Resuming after the last event of a finished instance: nothing more, and the stream ends.
    const after = await readStream("step-tour", id, { lastEventId: whole.events.at(-1).id });
    assert.deepEqual(after, { events: [], closedByServer: true });
  });

  it("refuses an Accept it cannot serve and a malformed Last-Event-ID with 400; a missing instance is 404", async () => {
    const id = uniqueId("hist-bad");
    assert.equal((await createInstance("step-tour", { id, params: { actions: [] } })).status, 201);
    for (const accept of ["text/html", "application/xml, image/png", "application/json;q=0"]) {
      const res = await api("GET", historyPath("step-tour", id), undefined, { accept });
      assert.equal(res.status, 400, accept);
      assert.equal(res.body.error.code, "invalid_accept");
    }
    const badId = await api("GET", historyPath("step-tour", id), undefined, { accept: "text/event-stream", "last-event-id": "yesterday" });
    assert.equal(badId.status, 400);
    assert.equal(badId.body.error.code, "invalid_last_event_id");
    const missing = await api("GET", historyPath("step-tour", uniqueId("nobody")), undefined, { accept: "text/event-stream" });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, "instance_not_found");
    assert.equal((await api("GET", historyPath("step-tour", id), undefined, { accept: "*/*" })).status, 200);
  });
});
