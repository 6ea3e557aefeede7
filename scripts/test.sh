#!/usr/bin/env bash
# The one command that runs every test: `scripts/test.sh` (what .ci/run
# runs, and what the README tells you to run).
#
# First it makes sure the outside programs the tests drive are here, as
# Debian packages: installed with apt-get when we are root or have sudo,
# otherwise it names exactly what to install and stops. Then every suite:
# `cargo test --locked` (Rust: unit, integration, doc tests), the library
# built with no optional feature and with each alone (clippy, no warning),
# then the Python client's (clients/python): a virtual environment in
# target/python-venv with the package and its test extras from PyPI, pytest
# against the real server, `ruff check`, `ruff format --check` and
# `mypy --strict`; then the JavaScript client's (clients/js): `npm ci`, and
# node's test runner against the real server and in headless Chromium.
#
#   scripts/test.sh             # everything
#   scripts/test.sh ARGS...     # only `cargo test ARGS` (a test name, say)
#
# What the tests need beyond Rust, and why:
# - procps: the integration tests stop the server with the `kill` program;
# - python3: the TLS tests check our server against Python's ssl module,
#   and clients/python is tested with it;
# - python3-venv: its virtual environment (Debian splits ensurepip out);
# - haproxy, nats-server: tests/deploy.rs runs docs/DEPLOY.md for real
#   (each started on a free loopback port and stopped by its PID);
# - tshark: tests/wireshark.rs runs the Lua dissector on a capture (as
#   `nobody` via util-linux's setpriv when we are root: tshark refuses Lua
#   to root);
# - nodejs, npm: clients/js is tested with node's test runner (npm brings
#   its test dependencies: ws, @msgpack/msgpack, puppeteer-core);
# - chromium: the chat page is tested in a real headless browser.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "test.sh: cargo not found: install a Rust toolchain (https://rustup.rs) first" >&2
    exit 1
  fi
fi

# program -> the Debian package that provides it
declare -A package=(
  [kill]=procps [python3]=python3 [haproxy]=haproxy [nats-server]=nats-server
  [tshark]=tshark [setpriv]=util-linux [node]=nodejs [npm]=npm [chromium]=chromium
)
missing=()
for program in kill python3 haproxy nats-server tshark setpriv node npm chromium; do
  type -P "$program" >/dev/null 2>&1 || missing+=("${package[$program]}")
done
if type -P python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  missing+=(python3-venv)
fi
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo)
  else
    echo "test.sh: the tests need these Debian packages: ${missing[*]}" >&2
    echo "test.sh: install them (as root: apt-get install ${missing[*]}) and run this again" >&2
    exit 1
  fi
  command -v apt-get >/dev/null 2>&1 || {
    echo "test.sh: no apt-get here; install the programs these packages provide: ${missing[*]}" >&2
    exit 1
  }
  echo "test.sh: installing ${missing[*]}" >&2
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo test --locked "$@"
if (($# > 0)); then
  exit 0
fi

# The library as a user may build it: with none of its optional features,
# and with each alone, it compiles with no warning (code only a feature uses
# is not left dead without it).
for features in "" nats typed websocket; do
  echo "== the library with features [${features}]"
  cargo clippy --locked --quiet -p rust-tcp --lib --no-default-features \
    ${features:+--features "$features"} -- -D warnings
done

# The Python client, against the server cargo just built.
venv=target/python-venv
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  echo "test.sh: creating the Python virtual environment in $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
fi
echo "test.sh: installing clients/python with its test extras into $venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "./clients/python[test]"
# The package itself anew each run (same version number, new code).
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall ./clients/python
(
  cd clients/python
  "../../$venv/bin/python" -m pytest -q
  "../../$venv/bin/ruff" check .
  "../../$venv/bin/ruff" format --check .
  "../../$venv/bin/mypy"
)

# The JavaScript client, in node and in Chromium, against the same server.
echo "test.sh: installing clients/js's test dependencies (npm ci)" >&2
(
  cd clients/js
  npm ci --no-audit --no-fund --loglevel=error
  npm run --silent check   # the JSDoc types, checked by tsc --strict
  node --test test/*.test.js
)
