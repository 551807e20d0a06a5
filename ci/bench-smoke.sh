#!/usr/bin/env bash
# Release-mode Nexmark numbers for BENCHMARKS.md: each stateless query at parallelism 1 and 2.
# Usage: ci/bench-smoke.sh [EVENTS]   (default 10,000,000)
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-10000000}"
cargo build --release --locked --workspace
for q in q0 q1 q2 q10 q14 q21 q22; do
  for p in 1 2; do
    ./target/release/eddy nexmark run --query "$q" --events "$events" --parallelism "$p" --json
  done
done
