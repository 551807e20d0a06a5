#!/usr/bin/env bash
# The test command of README.md: installs what the tests need, checks formatting, lints,
# file sizes, runs every test with nextest in the dev profile, then a short chaos run
# (SIGKILLs and resumes, ci/chaos.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

bash ci/setup.sh
bash ci/file-size.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --no-fail-fast
bash ci/chaos.sh --kills 3
