// Starts a Worker under `wrangler dev` on free loopback ports with fresh local state,
// and waits until it answers. Used by the integration tests and the benchmarks.
import { spawn, execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, mkdirSync, createWriteStream, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const wrangler = path.join(root, "node_modules/.bin/wrangler");
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/// `cwd`: the Worker's folder; `vars`: --var overrides; `migrate`: apply D1 migrations
/// first; `readyPath`: a path that answers once the Worker is up; `log`: log file.
export async function startDevServer(options) {
  // A free port is free when chosen, not when wrangler binds it: a Worker started at the
  // same moment (workerd opens loopback sockets of its own) can take it first. wrangler
  // then exits with "Address already in use", and the server starts again on new ports.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDevServerOnce(options);
    } catch (error) {
      if (!error.portTaken || attempt === 3) throw error;
    }
  }
}

async function startDevServerOnce({ cwd = root, vars = {}, migrate = false, readyPath = "/", log }) {
  const port = await freePort();
  const inspectorPort = await freePort();
  const persist = mkdtempSync(path.join(os.tmpdir(), "rust-workflows-dev-"));
  // WORKFLOWS_PROBE: wrangler's build command (scripts/build.sh) builds with the probe.
  const env = { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true", WORKFLOWS_PROBE: "1" };
  // A time limit, so a wrangler command that never returns fails its test instead of
  // blocking every test in this process.
  const run = (args) => execFileSync(wrangler, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"], timeout: 120_000 });
  if (migrate) run(["d1", "migrations", "apply", "DB", "--local", "--persist-to", persist]);
  mkdirSync(path.dirname(log), { recursive: true });
  const logStream = createWriteStream(log);
  // An empty env file instead of the developer's .dev.vars: the Worker gets exactly `vars`.
  const envFile = path.join(persist, "empty.env");
  writeFileSync(envFile, "");
  const args = [
    "dev", "--port", String(port), "--ip", "127.0.0.1", "--inspector-port", String(inspectorPort),
    "--persist-to", persist, "--log-level", "info", "--env-file", envFile,
    ...Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
  ];
  const child = spawn(wrangler, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.pipe(logStream);
  child.stderr.pipe(logStream);
  let exited = null;
  child.on("exit", (code) => { exited = code; });
  // The local state is removed when the server stops, and at the latest when this process
  // exits: hundreds of runs would otherwise fill the disk with persisted D1s and engines.
  const removeState = () => rmSync(persist, { recursive: true, force: true });
  process.on("exit", () => {
    child.kill("SIGKILL");
    removeState();
  });

  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (exited !== null) {
      // The log is complete once wrangler's output streams have ended into it.
      if (!logStream.writableFinished) await Promise.race([new Promise((r) => logStream.once("finish", r)), sleep(1000)]);
      removeState();
      const error = new Error(`wrangler dev exited with ${exited}; see ${log}`);
      error.portTaken = readFileSync(log, "utf8").includes("Address already in use");
      throw error;
    }
    if (Date.now() > deadline) throw new Error(`wrangler dev did not answer within 180 s; see ${log}`);
    try {
      const res = await fetch(`${base}${readyPath}`);
      if (res.status < 500) break;
    } catch {}
    await sleep(250);
  }
  return {
    base,
    persist,
    /// wrangler's process id (workerd runs under it; the bench reads its memory).
    pid: child.pid,
    /// Its inspector port (`npm run bench:profile` records CPU profiles over it).
    inspectorPort,
    /// Runs wrangler with the server's persisted state (for `d1 execute`, `kv key get`, …).
    wranglerWithState: (args) => run([...args, "--local", "--persist-to", persist]),
    async stop() {
      const gone = new Promise((r) => (exited !== null ? r() : child.once("exit", r)));
      child.kill("SIGTERM");
      await Promise.race([gone, sleep(5000)]);
      if (exited === null) {
        child.kill("SIGKILL");
        await Promise.race([gone, sleep(5000)]);
      }
      removeState();
    },
  };
}

/// A plain copy of the starter template (templates/starter) in a new directory outside
/// this repository, its library dependencies pointed at this checkout's crates: the
/// starter as a user begins from it. Returns the directory.
export function copyStarter() {
  const template = path.join(root, "templates/starter");
  const dir = mkdtempSync(path.join(os.tmpdir(), "starter-"));
  // Only what the template holds, as a plain copy would take it (no build output).
  const skipped = ["node_modules", "target", "build", ".wrangler", "tests/.tmp", ".dev.vars"];
  cpSync(template, dir, {
    recursive: true,
    filter: (src) => {
      const rel = path.relative(template, src);
      return !skipped.some((skip) => rel === skip || rel.startsWith(`${skip}${path.sep}`));
    },
  });
  const manifest = path.join(dir, "Cargo.toml");
  const original = readFileSync(manifest, "utf8");
  const pointed = original.replaceAll('path = "../../crates/', `path = "${root}/crates/`);
  if (pointed === original || pointed.includes("../../")) throw new Error("templates/starter/Cargo.toml's library paths moved");
  writeFileSync(manifest, pointed);
  return dir;
}
