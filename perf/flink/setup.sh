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
if ! { [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import pyflink' 2>/dev/null; }; then
  echo "installing apache-flink 2.3.0 into $venv (about 850 MB)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'apache-flink==2.3.0'
fi
lib="$("$venv/bin/python" -c 'import pyflink, os; print(os.path.join(pyflink.__path__[0], "lib"))')"

# q14's count_char UDF, compiled against Flink's own table API jar (flink_run.py loads it).
udf_src="$(cd "$(dirname "$0")" && pwd)/udf"
udf_jar="$venv/nexmark-udf.jar"
if [ ! -f "$udf_jar" ] || [ -n "$(find "$udf_src" -name '*.java' -newer "$udf_jar")" ]; then
  if ! command -v javac >/dev/null || ! command -v jar >/dev/null; then
    echo "error: no javac/jar on PATH; the q14 UDF needs a JDK 17" >&2
    exit 2
  fi
  classes="$(mktemp -d)"
  trap 'rm -rf "$classes"' EXIT
  javac --release 17 -nowarn -cp "$lib/*" -d "$classes" $(find "$udf_src" -name '*.java')
  jar --create --file "$udf_jar" -C "$classes" .
fi
echo "Apache Flink is installed in $venv (UDF jar: $udf_jar)"
