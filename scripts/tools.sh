# Sourced by setup.sh, build.sh and test.sh: the pinned versions of the build tools and
# where setup.sh installs them. Each tool version gets an install root of its own under
# $CARGO_HOME, so this project never replaces a worker-build or wasm-bindgen of yours in
# ~/.cargo/bin, and two checkouts pinning different versions do not fight.
NIGHTLY=nightly-2026-05-20
NIGHTLY_RUSTC="rustc 1.97.0-nightly (e50aa6fba 2026-05-19)"
WORKER_BUILD_VERSION=0.8.7
# The wasm-bindgen CLI must match the wasm-bindgen crate in Cargo.lock exactly.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
TOOLS_ROOT="${CARGO_HOME:-$HOME/.cargo}/worker-workflows-tools"
WORKER_BUILD_BIN="$TOOLS_ROOT/worker-build-$WORKER_BUILD_VERSION/bin/worker-build"
WASM_BINDGEN_BIN="$TOOLS_ROOT/wasm-bindgen-$WASM_BINDGEN_VERSION/bin/wasm-bindgen"
# twiggy sizes the Wasm by function (`npm run bench:size` only; `setup.sh --twiggy`).
TWIGGY_VERSION=0.8.0
TWIGGY_BIN="$TOOLS_ROOT/twiggy-$TWIGGY_VERSION/bin/twiggy"
export PATH="$PWD/node_modules/.bin:${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
