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
# An S3-compatible server (moto) for gemini-state's checkpoint-location tests, in a
# virtual environment of its own.
s3_venv="${EDDY_S3_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/eddy/s3-venv}"
if ! "$s3_venv/bin/python" -c "import moto.server, flask_cors" >/dev/null 2>&1; then
  if ! python3 -m venv --help >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null
  fi
  rm -rf "$s3_venv"
  python3 -m venv "$s3_venv"
  "$s3_venv/bin/pip" install -q --disable-pip-version-check \
    'moto[s3]==5.2.5' 'flask==3.1.3' 'flask-cors==6.0.5'
fi
