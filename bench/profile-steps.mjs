// `npm run bench:profile`: where each Worker's own isolate spends its CPU during the step
// overhead benchmark's run (a step-tour instance of PROFILE_STEPS no-op steps, 200 by
// default), the Rust Worker against the TypeScript twin. Builds the Rust Worker with the
// probe and its Wasm name section kept (WASM_NAMES=1), starts both under `wrangler dev` on
// loopback, and records a V8 CPU profile of each over its inspector while the instance runs
// (the status polls that wait for it included, as in the benchmark). Prints the busy time
// and the functions with the most self and inclusive time, Wasm functions by their Rust
// names. The engine runs in another isolate and is not in these profiles. The profiles are
// kept in bench/.tmp/ (open them in Chrome's DevTools), with the bundle each Worker ran. One sample each: read it next to
// `npm run bench`'s spreads, on a quiet machine.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { root, startDevServer } from "../tests/e2e/devserver.mjs";
import { TOKEN, timeInstance } from "./client.mjs";

// The WebSocket client wrangler itself depends on (through miniflare): the inspector proxy
// needs an Origin header, which Node's built-in WebSocket does not send.
const WebSocket = createRequire(createRequire(path.join(root, "package.json")).resolve("miniflare"))("ws");
const STEPS = Number(process.env.PROFILE_STEPS ?? 200);
const out = path.join(root, "bench/.tmp");
mkdirSync(out, { recursive: true });

// In this process's env, so the build `wrangler dev` runs (build.command) finds it up to date.
process.env.WASM_NAMES = "1";
execFileSync("bash", ["scripts/build.sh"], { cwd: root, env: { ...process.env, WORKFLOWS_PROBE: "1" }, stdio: ["ignore", "inherit", "inherit"] });
const wasmNames = functionNames(readFileSync(path.join(root, "build/index_bg.wasm")));

/// The function names of a Wasm module's name section, by function index.
function functionNames(bytes) {
  let at = 8;
  const leb = () => {
    let value = 0, shift = 0, byte;
    do { byte = bytes[at++]; value += (byte & 0x7f) * 2 ** shift; shift += 7; } while (byte & 0x80);
    return value;
  };
  const text = (length) => { const s = bytes.subarray(at, at + length).toString("utf8"); at += length; return s; };
  const names = new Map();
  while (at < bytes.length) {
    const id = bytes[at++];
    const end = leb() + at;
    if (id === 0 && text(leb()) === "name") {
      while (at < end) {
        const sub = bytes[at++];
        const subEnd = leb() + at;
        if (sub === 1) for (let n = leb(); n > 0; n--) { const index = leb(); names.set(index, text(leb())); }
        at = subEnd;
      }
    }
    at = end;
  }
  return names;
}

/// One step-tour instance of `count` no-op steps, run to its end; its wall time in ms.
const noopInstance = async (base, count) => (await timeInstance(base, "step-tour", { actions: [{ noop: { name: "noop", count } }] })).ms;

async function connectInspector(port) {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
  const ws = new WebSocket(targets[0].webSocketDebuggerUrl, { headers: { Origin: `http://127.0.0.1:${port}` } });
  await new Promise((resolve, reject) => { ws.once("open", resolve); ws.once("error", reject); });
  let lastId = 0;
  const pending = new Map();
  ws.on("message", (data) => {
    const message = JSON.parse(data.toString());
    pending.get(message.id)?.(message);
    pending.delete(message.id);
  });
  const send = (method, params = {}) => new Promise((resolve) => {
    const id = ++lastId;
    pending.set(id, resolve);
    ws.send(JSON.stringify({ id, method, params }));
  });
  return { send, close: () => ws.close() };
}

/// The source lines of the profiled Worker's scripts, by script id: the bundle wrangler dev
/// runs is minified, so a JS frame is named with the start of its code as well.
const scriptLines = new Map();

async function readScripts(inspector, profile, name) {
  scriptLines.clear();
  await inspector.send("Debugger.enable");
  const scripts = new Map(profile.nodes.filter((n) => n.callFrame.url).map((n) => [n.callFrame.scriptId, n.callFrame.url]));
  for (const [id, url] of scripts) {
    const { result } = await inspector.send("Debugger.getScriptSource", { scriptId: id });
    if (!result?.scriptSource) continue;
    scriptLines.set(id, result.scriptSource.split("\n"));
    // Kept beside the profile, to read a frame's code by its line.
    if (url.endsWith("index.js")) writeFileSync(path.join(out, `profile-${name}-index.js`), result.scriptSource);
  }
}

/// A frame's name: a Wasm function by its Rust name (crate hashes dropped), else V8's, with
/// the first characters of its code.
function frameName({ functionName, url, lineNumber, columnNumber, scriptId }) {
  const wasm = functionName.match(/^wasm-function\[(\d+)\]$/);
  if (wasm) return (wasmNames.get(Number(wasm[1])) ?? functionName).replace(/\[[0-9a-f]{16}\]/g, "");
  const code = scriptLines.get(scriptId)?.[lineNumber]?.slice(columnNumber, columnNumber + 70);
  return `${functionName || "(anonymous)"}${url ? ` (${url.split("/").pop()}:${lineNumber})` : ""}${code ? ` ${code}` : ""}`;
}

function summarise(name, profile, wallMs) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map();
  const inclusive = new Map();
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    if (nodes.get(id).callFrame.functionName === "(idle)") return;
    busy += dt;
    const leaf = frameName(nodes.get(id).callFrame);
    self.set(leaf, (self.get(leaf) ?? 0) + dt);
    const seen = new Set();
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const frame = frameName(nodes.get(at).callFrame);
      if (frame === "(root)" || seen.has(frame)) continue;
      seen.add(frame);
      inclusive.set(frame, (inclusive.get(frame) ?? 0) + dt);
    }
  });
  const rows = (map, n) => [...map].sort((a, b) => b[1] - a[1]).slice(0, n).map(([f, us]) => `| ${(us / 1000).toFixed(1)} | ${(us / 1000 / STEPS).toFixed(3)} | \`${f.slice(0, 200).replaceAll("|", "\\|")}\` |`);
  console.log(`\n### ${name}: ${STEPS} no-op steps in ${wallMs.toFixed(0)} ms; its isolate busy ${(busy / 1000).toFixed(1)} ms (${(busy / 1000 / STEPS).toFixed(3)} ms per step, status polls included)\n`);
  console.log("Most self time:\n\n| ms | ms/step | function |\n| ---: | ---: | --- |");
  console.log(rows(self, 15).join("\n"));
  console.log("\nMost inclusive time:\n\n| ms | ms/step | function |\n| ---: | ---: | --- |");
  console.log(rows(inclusive, 25).join("\n"));
}

const vars = { API_TOKEN: TOKEN, ENABLE_STEP_TOUR: "true", ALLOW_PRIVATE_HOSTS: "127.0.0.1" };
for (const [name, cwd, migrate] of [["rust", root, true], ["ts", path.join(root, "bench/ts-twin"), false]]) {
  const server = await startDevServer({ cwd, migrate, vars, readyPath: "/", log: path.join(out, `profile-${name}-wrangler.log`) });
  try {
    await noopInstance(server.base, 10); // warm: the isolate, the engine, the first D1 writes
    const inspector = await connectInspector(server.inspectorPort);
    await inspector.send("Profiler.enable");
    await inspector.send("Profiler.setSamplingInterval", { interval: 100 });
    await inspector.send("Profiler.start");
    const wallMs = await noopInstance(server.base, STEPS);
    const { result } = await inspector.send("Profiler.stop");
    await readScripts(inspector, result.profile, name);
    inspector.close();
    writeFileSync(path.join(out, `profile-${name}.cpuprofile`), JSON.stringify(result.profile));
    summarise(name === "rust" ? "Rust Worker" : "TypeScript twin", result.profile, wallMs);
  } finally {
    await server.stop();
  }
}
process.exit(0);
