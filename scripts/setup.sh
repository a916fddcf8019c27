#!/usr/bin/env bash
# Set up a fresh machine: Debian's Fashion-MNIST (when apt is available) and a virtual
# environment in .venv holding exactly the versions in requirements.txt (hash-pinned, written by
# scripts/lock.sh), then this project (editable: `pip install -e . --no-deps`), which puts the
# `alstudy` command on the venv's PATH. Safe to rerun: it reinstalls when pyproject.toml or the lock changed.
#   --tests   requirements-tests.txt instead: also the tests' extras (a tracking server, Ray, pytest, ruff,
#             uv for scripts/lock.sh) and what the tests
#             start themselves: PostgreSQL (tracking-server tests), Chromium (labelling page, MLflow UI),
#             Label Studio (in .venv-label-studio)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
[ -d /usr/share/datasets/fashion-mnist ] || packages+=(dataset-fashion-mnist)
if [ "${1:-}" = "--tests" ] && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  packages+=(postgresql)
fi
if [ "${1:-}" = "--tests" ] && ! command -v chromium >/dev/null 2>&1; then
  packages+=(chromium)   # headless, for the tests that open the labelling contact sheet and the MLflow UI
fi
if [ ${#packages[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "setup: installing Debian's ${packages[*]}"
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null \
    || echo "setup: could not install ${packages[*]}; Fashion-MNIST falls back to the web sources, server tests skip"
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
lock=requirements.txt
[ "${1:-}" = "--tests" ] && lock=requirements-tests.txt
stamp=.venv/.install.sha256
want=$( (sha256sum pyproject.toml "$lock"; echo "$lock") | sha256sum | cut -d' ' -f1)
# A stamp from a --tests install also covers the plain one: the tests lock holds every package of the
# runtime lock, at the same version (scripts/lock.sh writes them so).
tests_want=$(sha256sum pyproject.toml requirements.txt requirements-tests.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] && ! { [ "$lock" = requirements.txt ] \
     && [ "$(cat .venv/.install-tests 2>/dev/null)" = "$tests_want" ]; }; then
  echo "setup: installing $lock (hash-pinned) and alstudy (editable) into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q --require-hashes -r "$lock"
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
  if [ "$lock" = requirements-tests.txt ]; then echo "$tests_want" > .venv/.install-tests; fi
fi
# Label Studio, for the tests that label through it (and for you, to label in): a virtual environment
# of its own, as it pins its own Django and friends, from its own hash-pinned lock (a new release of one
# of its unpinned dependencies once stopped it at start). About 6 minutes the first time.
ls_stamp=.venv-label-studio/.install.sha256
ls_want=$(sha256sum requirements-label-studio.txt | cut -d' ' -f1)
if [ "${1:-}" = "--tests" ] && [ "$(cat "$ls_stamp" 2>/dev/null)" != "$ls_want" ]; then
  echo "setup: installing Label Studio (requirements-label-studio.txt) into .venv-label-studio (a few minutes)"
  [ -x .venv-label-studio/bin/python ] || python3 -m venv .venv-label-studio
  .venv-label-studio/bin/python -m pip install -q --require-hashes -r requirements-label-studio.txt
  echo "$ls_want" > "$ls_stamp"
fi
# DVC needs a git repository; a downloaded zip of the project has none.
[ -d .git ] || git init -q
echo "setup: ready (.venv)"
