// `npm run bench:size`: where the bytes of the Rust Worker's Wasm go. Takes the wasm that
// `scripts/build.sh` compiled (rustc's output keeps its name section), runs wasm-bindgen and
// wasm-opt on it as the build does but keeping names, and sums twiggy's per-function sizes
// by crate, and by module for this crate. twiggy is installed by `setup.sh --twiggy`, which
// `npm run bench:size` runs first.
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { root } from "../tests/e2e/devserver.mjs";

const input = path.join(root, "target/wasm32-unknown-unknown/release/rust_workflows.wasm");
const out = mkdtempSync(path.join(os.tmpdir(), "size-profile-"));
const run = (cmd, args, env = {}) => execFileSync(cmd, args, { cwd: root, env: { ...process.env, ...env }, maxBuffer: 1 << 28 }).toString();

execFileSync("bash", ["scripts/build.sh"], { cwd: root, stdio: ["ignore", "inherit", "inherit"] });
// The wasm-bindgen CLI setup installed for this project (scripts/tools.sh says where).
const [wasmBindgen, twiggy] = run("bash", ["-c", "source scripts/tools.sh && echo \"$WASM_BINDGEN_BIN\" && echo \"$TWIGGY_BIN\""]).trim().split("\n");
run(wasmBindgen, ["--target", "bundler", "--out-dir", out, input], { WASM_BINDGEN_USE_JS_SYS: "1" });
const opt = path.join(out, "opt.wasm");
const features = ["mutable-globals", "sign-ext", "nontrapping-float-to-int", "bulk-memory", "multivalue", "reference-types", "exception-handling"];
run(path.join(root, "node_modules/.bin/wasm-opt"), [path.join(out, "rust_workflows_bg.wasm"), "-o", opt, "-O", "-g", ...features.map((f) => `--enable-${f}`)]);
const csv = run(twiggy, ["top", "-n", "1000000", "-f", "csv", opt]);

const GROUPS = {
  "serde (serde_json, path_to_error, …)": ["serde_json", "serde_core", "serde", "serde_path_to_error", "serde_wasm_bindgen", "zmij"],
  "workers-rs and wasm-bindgen": ["worker", "wasm_bindgen", "js_sys", "web_sys", "wasm_bindgen_futures", "wasm_streams"],
  "std, core, alloc, allocator": ["core", "alloc", "std", "dlmalloc", "panic_unwind", "hashbrown", "compiler_builtins"],
  chrono: ["chrono"],
  "hmac, sha2, base64, subtle": ["sha2", "hmac", "base64", "subtle", "digest", "block_buffer"],
  "matchit, humantime, form_urlencoded, futures": ["matchit", "humantime", "form_urlencoded", "percent_encoding", "futures_util", "futures_core"],
};
const groupOf = Object.fromEntries(Object.entries(GROUPS).flatMap(([g, crates]) => crates.map((c) => [c, g])));
const sizes = new Map();
let total = 0;
for (const line of csv.split("\n").slice(1)) {
  // CSV: a name is quoted (with "" for ") only when it holds a comma or a quote.
  const m = line.match(/^"(.*)",(\d+),/) ?? line.match(/^([^",]*),(\d+),/);
  if (!m) continue;
  const name = m[1].replaceAll('""', '"');
  const bytes = Number(m[2]);
  if (/^"(function|data|local) names" subsection/.test(name)) continue;
  total += bytes;
  let key;
  const crates = [...name.matchAll(/([a-z_0-9]+)\[[0-9a-f]+\]::/g)].map((c) => c[1]);
  if (name.startsWith("data segment")) key = "data: strings, tables, the OpenAPI document";
  else if (crates.includes("rust_workflows")) {
    // Async code is attributed to the outermost function it was inlined into: the entry
    // points hold the workflows' run futures and the HTTP handlers.
    const mod = name.match(/rust_workflows\[[0-9a-f]+\]::([a-z_0-9]+)(?:::([a-z_0-9]+))?/);
    const entry = [["run_workflow", "the workflows' run futures"], ["fetch", "the HTTP API"], ["queue", "the queue consumer"], ["scheduled", "the cron handler"]]
      .find(([e]) => mod[1] === "entry" && name.includes(e));
    key = entry
      ? `this crate: ${entry[1]} (inlined into its entry point)`
      : `this crate: ${["workflows", "bridge"].includes(mod[1]) && mod[2] ? `${mod[1]}::${mod[2]}` : mod[1]}`;
  } else if (crates.length) key = groupOf[crates[0]] ?? crates[0];
  else key = "other (imports, exports, tables, glue)";
  sizes.set(key, (sizes.get(key) ?? 0) + bytes);
}
console.log(`Wasm after wasm-bindgen and wasm-opt -O, without the name section: ${(total / 1024).toFixed(0)} KiB\n`);
console.log("| part | KiB | share |\n| --- | ---: | ---: |");
for (const [key, bytes] of [...sizes].sort((a, b) => b[1] - a[1]).filter(([, b]) => b / total >= 0.005)) {
  console.log(`| ${key} | ${(bytes / 1024).toFixed(1)} | ${((100 * bytes) / total).toFixed(1)}% |`);
}
