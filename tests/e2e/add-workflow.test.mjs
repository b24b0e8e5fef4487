// Adds a throwaway workflow to a copy of this repository exactly as README's "Adding a
// workflow" says (a file, one line in build.rs, the wrangler.jsonc entry the build prints),
// builds it as `npm run dev` does, and runs it on the local runtime: proof that those
// steps are all it takes. The copy builds in its own target dir (target/add-workflow).
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { root, startDevServer, sleep } from "./devserver.mjs";

const WORKFLOW_RS = `//! A throwaway workflow: greets, sleeps a second, greets again.
use serde::Deserialize;
use worker_workflows::{Env, Step, StepError, Workflow, WorkflowEvent};

#[derive(Deserialize)]
pub struct GreetingParams {
    name: String,
}

pub struct GreetingWorkflow;

impl Workflow for GreetingWorkflow {
    type Params = GreetingParams;
    type Output = Vec<String>;

    fn new(_env: Env) -> Self {
        GreetingWorkflow
    }

    async fn run(&self, event: &WorkflowEvent<GreetingParams>, step: Step<'_>) -> Result<Vec<String>, StepError> {
        let name = &event.payload.name;
        let hello: String = step.run("hello", |_| async move { Ok(format!("Hello, {name}!")) }).await?;
        step.sleep("pause", "1 second").await?;
        let bye: String = step.run("goodbye", |_| async move { Ok(format!("Goodbye, {name}!")) }).await?;
        Ok(vec![hello, bye])
    }
}
`;
const REGISTRY_LINE = `        .workflow(Workflow::new("greeting", "GreetingWorkflow"))\n`;

/// A copy of the working tree (tracked and new files, not ignored ones), sharing node_modules.
function copyRepo() {
  const dir = mkdtempSync(path.join(os.tmpdir(), "rust-workflows-add-"));
  const files = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: root })
    .toString().split("\0").filter(Boolean);
  for (const file of files) {
    try {
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      // Timestamps kept, so setup.sh does not take package-lock.json for new and reinstall.
      cpSync(path.join(root, file), path.join(dir, file), { preserveTimestamps: true });
    } catch (e) {
      if (e.code !== "ENOENT") throw e; // deleted but not yet committed
    }
  }
  symlinkSync(path.join(root, "node_modules"), path.join(dir, "node_modules"));
  return dir;
}

function build(dir) {
  return spawnSync("bash", ["scripts/build.sh"], {
    cwd: dir,
    env: { ...process.env, CARGO_TARGET_DIR: path.join(root, "target/add-workflow") },
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
}

// The suite's own limit, like its test's: the copy's first release build alone can take
// more than the runner's default 5 minutes on a loaded machine.
describe("adding a workflow the documented way", { timeout: 1_200_000 }, () => {
  const dir = copyRepo();
  let server;
  after(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("takes a file, one line in build.rs and the wrangler.jsonc entry the build prints", { timeout: 1_200_000 }, async () => {
    // 1. The workflow file, named after the workflow.
    writeFileSync(path.join(dir, "src/workflows/greeting.rs"), WORKFLOW_RS);
    // 2. One line in build.rs, where the workflows are registered.
    const registryPath = path.join(dir, "build.rs");
    const registry = readFileSync(registryPath, "utf8");
    const anchor = "        .modules_in(\"src/workflows\")\n";
    assert.ok(registry.includes(anchor), "build.rs's registration moved");
    writeFileSync(registryPath, registry.replace(anchor, REGISTRY_LINE + anchor));

    // 3. Without the wrangler.jsonc entry the build fails, printing the JSON to paste.
    const refused = build(dir);
    assert.notEqual(refused.status, 0, "the build passed without the wrangler.jsonc entry");
    const output = refused.stdout + refused.stderr;
    const line = output.split("\n").map((l) => l.trim()).find((l) => l.startsWith("{") && l.includes('"GreetingWorkflow"'));
    assert.ok(line, `the build did not print the entry to paste:\n${output.slice(-3000)}`);
    const entry = JSON.parse(line);
    assert.deepEqual(entry, { name: "greeting", binding: "GREETING_WORKFLOW", class_name: "GreetingWorkflow" });

    // Paste it, as a user would, at the start of the `workflows` array.
    const wranglerPath = path.join(dir, "wrangler.jsonc");
    const wrangler = readFileSync(wranglerPath, "utf8");
    assert.ok(wrangler.includes('"workflows": ['));
    writeFileSync(wranglerPath, wrangler.replace('"workflows": [', `"workflows": [\n    ${line},`));

    const built = build(dir);
    assert.equal(built.status, 0, `the build failed after pasting the entry:\n${(built.stdout + built.stderr).slice(-4000)}`);
    assert.match(readFileSync(path.join(dir, "build/workflows.mjs"), "utf8"), /export class GreetingWorkflow extends rustWorkflow\("GreetingWorkflow"\)/);

    // It runs on the local runtime like the others, through the HTTP API.
    server = await startDevServer({
      cwd: dir,
      migrate: true,
      readyPath: "/health",
      log: path.join(root, "tests/.tmp/add-workflow.log"),
      vars: { API_TOKEN: "add-token" },
    });
    const call = async (method, urlPath, body) => {
      const res = await fetch(`${server.base}${urlPath}`, {
        method,
        headers: { authorization: "Bearer add-token", "content-type": "application/json" },
        body: body && JSON.stringify(body),
      });
      return { status: res.status, body: await res.json() };
    };
    const listed = await call("GET", "/workflows");
    assert.ok(listed.body.workflows.some((w) => w.name === "greeting" && w.className === "GreetingWorkflow"), JSON.stringify(listed.body));
    const created = await call("POST", "/workflows/greeting/instances", { id: "hi-1", params: { name: "Ada" } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    let status;
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(250)) {
      status = (await call("GET", "/workflows/greeting/instances/hi-1")).body;
      if (["complete", "errored", "terminated"].includes(status.status)) break;
    }
    assert.equal(status.status, "complete", JSON.stringify(status));
    assert.deepEqual(status.output, ["Hello, Ada!", "Goodbye, Ada!"]);
  });
});
