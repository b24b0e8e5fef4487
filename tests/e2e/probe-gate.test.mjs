// A development probe (step-tour, `.enabled_by("ENABLE_STEP_TOUR")` in build.rs) is gated
// on its run as well as on its routes: its class and binding are deployed wherever the
// Worker is, so an instance started around the HTTP API (wrangler's CLI, the dashboard)
// must fail at once where the var is not "true", and run where it is.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { startDevServer, root, wrangler, sleep } from "./devserver.mjs";
import { worker, uniqueId } from "./harness.mjs";

/// Starts an instance with `wrangler workflows trigger --local`, as an operator would,
/// then reads it with `wrangler workflows instances describe` until it ends.
async function triggerAndDescribe(base, workflow, id, params) {
  const port = new URL(base).port;
  const run = (args) => execFileSync(wrangler, [...args, "--local", "--port", port], { cwd: root, encoding: "utf8", env: { ...process.env, CI: "true" }, timeout: 60_000 });
  run(["workflows", "trigger", workflow, JSON.stringify(params), "--id", id]);
  let described;
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(250)) {
    described = JSON.parse(run(["workflows", "instances", "describe", workflow, id, "--json"]));
    if (["complete", "errored", "terminated"].includes(described.status)) return described;
  }
  assert.fail(`${workflow}/${id} did not end: ${JSON.stringify(described)}`);
}

describe("a development probe's run", { timeout: 300_000 }, () => {
  let disabled;
  after(async () => await disabled?.stop());

  it("fails at once, running no step, where its var is not \"true\"", async () => {
    // wrangler.jsonc's own vars: ENABLE_STEP_TOUR is never set there.
    disabled = await startDevServer({ migrate: true, readyPath: "/health", vars: { API_TOKEN: "gate-token" }, log: path.join(root, "tests/.tmp/probe-gate.log") });
    const described = await triggerAndDescribe(disabled.base, "step-tour", uniqueId("gate"), { actions: [{ noop: { name: "n", count: 1 } }] });
    assert.equal(described.status, "errored", JSON.stringify(described));
    assert.equal(described.error?.name, "NonRetryableError");
    assert.match(described.error?.message ?? "", /step-tour is disabled in this deployment \(its var ENABLE_STEP_TOUR is not "true"\)/);
    assert.deepEqual(described.steps, [], "no step ran");
  });

  it("runs where its var is \"true\"", async () => {
    const { base } = await worker(); // the shared test Worker sets ENABLE_STEP_TOUR=true
    const described = await triggerAndDescribe(base, "step-tour", uniqueId("gate"), { actions: [{ noop: { name: "n", count: 1 } }] });
    assert.equal(described.status, "complete", JSON.stringify(described));
    assert.equal(described.steps.length, 1, JSON.stringify(described.steps));
  });
});
