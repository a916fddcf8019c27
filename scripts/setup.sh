#!/usr/bin/env bash
# Set up a fresh machine: Debian's Fashion-MNIST (when apt is available) and a
# virtual environment in .venv with the pinned requirements. Safe to rerun.
#   --tests   also what the tests start themselves: PostgreSQL (tracking-server tests), Chromium (contact sheet, MLflow UI)
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
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing requirements into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  echo "$want" > "$stamp"
fi
# DVC needs a git repository; a downloaded zip of the project has none.
[ -d .git ] || git init -q
echo "setup: ready (.venv)"
