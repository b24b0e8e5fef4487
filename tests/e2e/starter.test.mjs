// The starter template as a user gets it: copied to a directory outside this repository,
// its dependencies pointed at this checkout's library crates, and its own `npm test` run
// there (setup, fmt, clippy for host and wasm32, its cargo tests on the test engine, the
// release build, and its end-to-end test, which starts it on `wrangler dev` and drives its
// workflow over HTTP). Its Rust builds share target/starter, so later runs are quicker.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { root } from "./devserver.mjs";

describe("the starter template, copied out", { timeout: 1_800_000 }, () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "starter-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("passes its own npm test against this checkout's library", { timeout: 1_800_000 }, () => {
    const template = path.join(root, "templates/starter");
    // Only what the template holds, as a plain copy would take it (no build output).
    cpSync(template, dir, {
      recursive: true,
      filter: (src) => !["node_modules", "target", "build", ".wrangler", "tests/.tmp"].some((skip) => src.startsWith(path.join(template, skip))),
    });
    assert.ok(!dir.startsWith(root), "the copy is outside the repository");
    const manifest = path.join(dir, "Cargo.toml");
    const original = readFileSync(manifest, "utf8");
    const pointed = original.replaceAll('path = "../../crates/', `path = "${root}/crates/`);
    assert.notEqual(pointed, original, "the template's library paths moved");
    assert.ok(!pointed.includes("../../"), "every library path points at this checkout");
    writeFileSync(manifest, pointed);

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
    assert.match(output, /test an_approved_claim_is_paid \.\.\. ok/);
    assert.match(output, /errors a rejected claim after its rollback released the hold/);
    assert.match(output, /# fail 0/);
  });
});
