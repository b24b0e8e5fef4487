// `npm run dev -- <wrangler flags>`: the documented way to pass flags to wrangler dev
// works for every flag, including the port dev.sh otherwise picks itself.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { root, freePort, sleep } from "./devserver.mjs";

describe("npm run dev", () => {
  it("passes --port and every other flag to wrangler dev, and migrates the D1 it was pointed at", async () => {
    const port = await freePort();
    const inspector = await freePort();
    const persist = mkdtempSync(path.join(os.tmpdir(), "rust-workflows-npm-dev-"));
    const hadDevVars = existsSync(path.join(root, ".dev.vars"));
    const args = ["run", "dev", "--", "--port", String(port), "--ip", "127.0.0.1", "--inspector-port", String(inspector),
      "--persist-to", persist, "--var", "API_TOKEN:npm-dev-token"];
    const env = { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" };
    const child = spawn("npm", args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    let exited = null;
    child.on("exit", (code) => (exited = code));
    try {
      const base = `http://127.0.0.1:${port}`;
      const deadline = Date.now() + 180_000;
      let health;
      while (!health) {
        assert.equal(exited, null, `npm run dev exited with ${exited}:\n${output.slice(-2000)}`);
        assert.ok(Date.now() < deadline, `no answer on port ${port}:\n${output.slice(-2000)}`);
        try { health = await fetch(`${base}/health`); } catch { await sleep(250); }
      }
      assert.equal(health.status, 200);
      // The dead-letter list reads D1: the migrations ran on the state --persist-to named.
      const letters = await fetch(`${base}/jobs/dead-letters`, { headers: { authorization: "Bearer npm-dev-token" } });
      assert.equal(letters.status, 200, await letters.clone().text());
      assert.deepEqual(await letters.json(), { deadLetters: [] });
      // The dashboard's URL is printed at start, on the port given, and serves the page.
      assert.match(output, new RegExp(`http://localhost:${port}/dashboard/`), output.slice(-2000));
      const page = await fetch(`${base}/dashboard/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<html/i);
    } finally {
      try { process.kill(-child.pid, "SIGTERM"); } catch {}
      const gone = new Promise((r) => (exited !== null ? r() : child.once("exit", r)));
      await Promise.race([gone, sleep(5000)]);
      try { process.kill(-child.pid, "SIGKILL"); } catch {}
      rmSync(persist, { recursive: true, force: true });
      // dev.sh creates .dev.vars from the example when it is missing; leave the tree as it was.
      if (!hadDevVars) rmSync(path.join(root, ".dev.vars"), { force: true });
    }
  });
});
