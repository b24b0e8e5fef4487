#!/usr/bin/env bash
# Starts the Worker locally on http://localhost:8787 on the real workerd runtime,
# installing and building whatever is missing first, with the local D1 migrated and
# the documented local secrets (.dev.vars, from .dev.vars.example: API_TOKEN=dev-token).
# Every argument goes to `wrangler dev` as given (`npm run dev -- --port 9000 --ip 0.0.0.0`);
# the port is 8787 only when none is given, and the flags that say where the local state
# and config are (--persist-to, --config, --env) reach the D1 migrations too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$PATH"
# A development build: with the probe (the cargo feature `probe`, where there is one).
export WORKFLOWS_PROBE=1
[ -f .dev.vars ] || cp .dev.vars.example .dev.vars

port_given=false
port=8787
migrate_flags=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --port) port_given=true port=${args[i + 1]:-$port} ;;
    --port=*) port_given=true port=${args[i]#--port=} ;;
    --persist-to | --config | -c | --env | -e) migrate_flags+=("${args[i]}" "${args[i + 1]:-}") ;;
    --persist-to=* | --config=* | --env=*) migrate_flags+=("${args[i]}") ;;
  esac
done

wrangler d1 migrations apply DB --local "${migrate_flags[@]}"
echo "dev: the dashboard will be at http://localhost:$port/dashboard/ (token: API_TOKEN in .dev.vars)" >&2
if $port_given; then
  exec wrangler dev "$@"
else
  exec wrangler dev --port 8787 "$@"
fi
