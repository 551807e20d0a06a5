#!/usr/bin/env bash
# No Rust source file may exceed 1,500 lines: split by responsibility before that.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=1500
bad=0
while IFS= read -r f; do
  n=$(wc -l < "$f")
  if [ "$n" -gt "$limit" ]; then
    echo "file too long: $f has $n lines (limit $limit)"
    bad=1
  fi
done < <(git ls-files '*.rs' 2>/dev/null || find . -name '*.rs' -not -path './target/*')
exit $bad
