// The starter template as a user gets it: copied to a directory outside this repository,
// its dependencies pointed at this checkout's library crates, and its own `npm test` run
// there (setup, fmt, clippy for host and wasm32, its cargo tests on the test engine, the
// release build, and its end-to-end test, which starts it on `wrangler dev` and drives its
// workflow over HTTP). Its Rust builds share target/starter, so later runs are quicker.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { copyStarter, root } from "./devserver.mjs";

describe("the starter template, copied out", { timeout: 1_800_000 }, () => {
  const dir = copyStarter();
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("passes its own npm test against this checkout's library", { timeout: 1_800_000 }, () => {
    assert.ok(!dir.startsWith(root), "the copy is outside the repository");
    assert.match(readFileSync(path.join(dir, "Cargo.toml"), "utf8"), new RegExp(`path = "${root}/crates/worker-workflows"`));

    const run = spawnSync("npm", ["test"], {
      cwd: dir,
      env: { ...process.env, CARGO_TARGET_DIR: path.join(root, "target/starter") },
      encoding: "utf8",
      maxBuffer: 256 * 1024 * 1024,
    });
    const output = `${run.stdout}\n${run.stderr}`;
    assert.equal(run.status, 0, `the starter's npm test failed:\n${output.slice(-6000)}`);
    // Each stage ran, and its tests passed.
    for (const stage of ["== host tests (cargo test)", "== building the Worker", "== integration tests on the local runtime"]) {
      assert.ok(output.includes(stage), `no "${stage}" in the starter's run`);
    }
    // Its host tests ran (cargo test --quiet prints a line per test binary) and passed.
    assert.match(output, /running 4 tests\n\.\.\.\.\ntest result: ok\. 4 passed/);
    assert.match(output, /errors a rejected claim after its rollback released the hold/);
    assert.match(output, /# fail 0/);
  });
});
