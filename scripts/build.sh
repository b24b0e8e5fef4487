#!/usr/bin/env bash
# Builds the Worker into build/ with worker-build: release, panic=unwind (a panic
# fails one step attempt instead of aborting the isolate), wasm-opt. wrangler runs
# this before `dev` and `deploy` (wrangler.jsonc `build.command`). Skips the build
# when nothing it reads has changed since the last one.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"

# The stamp is taken when a build starts, so a file saved during a build is newer than it.
STAMP=target/.worker-build-stamp
if [ -f build/index.js ] && [ -f "$STAMP" ] && [ -z "${FORCE_BUILD:-}" ] \
  && [ -z "$(find src shim Cargo.toml Cargo.lock build.rs wrangler.jsonc -newer "$STAMP" -print -quit)" ]; then
  echo "build: up to date" >&2
  exit 0
fi
mkdir -p target
touch "$STAMP.next"

bash scripts/setup.sh
export WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
export ESBUILD_BIN="$PWD/node_modules/.bin/esbuild"
export WASM_OPT_BIN="$PWD/node_modules/.bin/wasm-opt"
worker-build --release --panic-unwind
mv "$STAMP.next" "$STAMP"
