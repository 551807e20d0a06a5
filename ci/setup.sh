#!/usr/bin/env bash
# Installs the tools the build and tests need, if missing. Rust itself (rustup) is on every
# machine of this kind; cargo-nextest usually is too.
set -euo pipefail
if ! command -v cc >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq gcc >/dev/null
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
