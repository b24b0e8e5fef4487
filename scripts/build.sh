#!/usr/bin/env bash
# Builds the Worker into build/ with worker-build: release, panic=unwind (a panic
# fails one step attempt instead of aborting the isolate), wasm-opt. build.rs adds
# build/workflows.mjs, the shim's workflow classes generated from the registered workflows. wrangler runs
# this before `dev` and `deploy` (wrangler.jsonc `build.command`). Skips the build
# when nothing it reads has changed since the last one of the same kind.
# WORKFLOWS_PROBE=1 (set by `npm run dev`, `npm test`, `npm run bench` and the e2e harness)
# builds with the cargo feature `probe` where Cargo.toml declares one (the catalogue's
# step-tour); without it (`wrangler deploy`, `npm run deploy`) the build is production's.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh

# The dashboard (/dashboard/): the assets/ folder of the worker-workflows-api this Worker
# builds with (found with cargo metadata, so a path, git or registry dependency all work)
# copied into build/assets/, which wrangler.jsonc's "assets" names. A few KB, copied on
# every build (also when the Wasm is up to date), so the page is the one of the API it calls.
copy_dashboard() {
  local from
  from=$(cargo metadata --format-version 1 --filter-platform wasm32-unknown-unknown 2>/dev/null | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const p = JSON.parse(s).packages.find((p) => p.name === "worker-workflows-api");
      if (p) console.log(require("path").join(require("path").dirname(p.manifest_path), "assets"));
    });') || true
  if [ -n "$from" ] && [ -d "$from" ]; then
    rm -rf build/assets.next && mkdir -p build && cp -R "$from" build/assets.next && rm -rf build/assets && mv build/assets.next build/assets
  else
    echo "build: worker-workflows-api's assets/ not found (cargo metadata): the dashboard is not served" >&2
  fi
}

features=()
kind=production
if [ "${WORKFLOWS_PROBE:-}" = 1 ] && grep -q '^probe *=' Cargo.toml; then
  features=(--features probe)
  kind=probe
fi
# WASM_NAMES=1 (`npm run bench:profile`) keeps the Wasm's name section, so a CPU profile
# names Rust functions; never for a deploy (about 55 KiB more gzip).
strip=(--strip-debug)
if [ "${WASM_NAMES:-}" = 1 ]; then
  strip=(-g)
  kind="$kind+names"
fi

# The stamp is taken when a build starts, so a file saved during a build is newer than it;
# build/.kind says which kind of build build/ holds.
STAMP=target/.worker-build-stamp
watched=()
for p in src crates shim migrations Cargo.toml Cargo.lock build.rs wrangler.jsonc README.md rust-toolchain.toml; do
  [ -e "$p" ] && watched+=("$p")
done
if [ -f build/index.js ] && [ -f build/workflows.mjs ] && [ -f "$STAMP" ] && [ -z "${FORCE_BUILD:-}" ] \
  && [ "$(cat build/.kind 2>/dev/null)" = "$kind" ] \
  && [ -z "$(find "${watched[@]}" -newer "$STAMP" ! -path '*/assets/dashboard/*' ! -path '*/assets/_headers' -print -quit)" ]; then
  copy_dashboard
  echo "build: up to date ($kind)" >&2
  exit 0
fi
mkdir -p target
touch "$STAMP.next"

bash scripts/setup.sh
export WASM_BINDGEN_BIN ESBUILD_BIN="$PWD/node_modules/.bin/esbuild"
echo "build: $kind" >&2
"$WORKER_BUILD_BIN" --release --panic-unwind "${features[@]}"
# wasm-opt runs here rather than in worker-build (off in Cargo.toml), because worker-build's
# run passes --debuginfo, which keeps the name section: dropping it saves about 55 KiB of
# gzip upload, and a panic still carries its message. The feature flags are the ones
# worker-build passes, so nothing newer than workerd supports is emitted.
wasm-opt build/index_bg.wasm -o build/index_bg.wasm -O "${strip[@]}" \
  --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int --enable-bulk-memory \
  --enable-multivalue --enable-reference-types --enable-exception-handling
copy_dashboard
echo "$kind" > build/.kind
mv "$STAMP.next" "$STAMP"
