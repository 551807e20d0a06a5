#!/usr/bin/env bash
# Regenerates the expected Nexmark outputs in nexmark/reference/expected/ with DuckDB.
# Usage: nexmark/reference/regen.sh [qN ...]   (default: every query)
#
# Needs python3 and the package registry once: DuckDB is installed into a venv outside the
# repository. The events come from `eddy nexmark generate` with the settings of events.env.
# Rerun after any change to the generator or to a qN.sql here, and commit the result.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=events.env
source "$here/events.env"
venv="${EDDY_DUCKDB_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/eddy/duckdb-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import duckdb' 2>/dev/null; then
  echo "installing duckdb into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'duckdb==1.4.2'
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$root" && cargo run --quiet --locked --bin eddy -- nexmark generate --header \
  --events "$EVENTS" --seed "$SEED" --rate "$RATE" --out "$work/events")
"$venv/bin/python" "$here/regen.py" "$work/events" "$here" "$@"
