#!/usr/bin/env bash
# Installs Apache Flink 2.3.0 (PyFlink, with its jars) from PyPI into a venv outside the
# repository, once: about 850 MB. Needs python3 and Java 17 (`java` on PATH).
# Usage: perf/flink/setup.sh        (EDDY_FLINK_VENV overrides the location)
set -euo pipefail
venv="${EDDY_FLINK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/eddy/flink-venv}"
if ! command -v java >/dev/null; then
  echo "error: no java on PATH; Flink needs Java 17" >&2
  exit 2
fi
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import pyflink' 2>/dev/null; then
  echo "Apache Flink is installed in $venv"
  exit 0
fi
echo "installing apache-flink 2.3.0 into $venv (about 850 MB)" >&2
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet 'apache-flink==2.3.0'
"$venv/bin/python" -c 'import pyflink; print("Apache Flink is installed in", pyflink.__path__[0])'
