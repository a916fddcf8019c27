#!/usr/bin/env bash
# Write the hash-pinned locks from pyproject.toml, after editing its dependency lists:
#   requirements.txt         the runtime dependencies        (scripts/setup.sh installs it)
#   requirements-tests.txt   those and the `tests` extra     (scripts/setup.sh --tests, and so CI)
#   requirements-label-studio.txt  Label Studio's own venv, from requirements-label-studio.in (setup.sh --tests)
# for Python 3.11 on x86-64 Linux, CI's machine, with uv (the tests extra installs it in .venv).
# A package keeps the version it has in the lock while pyproject.toml allows it, so a refresh moves
# only what the edit needs; `bash scripts/lock.sh --upgrade` moves every pin to the newest allowed,
# `--upgrade-package NAME` one (then run the tests). The runtime lock takes its versions from the
# tests lock: the two agree on every package they share.
# Each lock's header records a SHA-256 of pyproject.toml's dependency tables (requires-python,
# dependencies, optional-dependencies); tests/test_requirements.py checks that it is current.
#   --hash   print that SHA-256 and stop (no network)
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3
hash=$("$python" - <<'EOF'
import hashlib, json, tomllib

with open("pyproject.toml", "rb") as stream:
    project = tomllib.load(stream)["project"]
tables = {key: project.get(key) for key in ("requires-python", "dependencies", "optional-dependencies")}
print(hashlib.sha256(json.dumps(tables, sort_keys=True).encode()).hexdigest())
EOF
)
if [ "${1:-}" = "--hash" ]; then
  echo "$hash"
  exit 0
fi

uv=${UV:-.venv/bin/uv}
if [ ! -x "$uv" ]; then
  echo "lock: no $uv; run bash scripts/setup.sh --tests first (the tests extra installs uv)" >&2
  exit 1
fi
target=(--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header --quiet)
"$uv" pip compile pyproject.toml --extra tests "${target[@]}" -o requirements-tests.txt "$@"
"$uv" pip compile pyproject.toml -c requirements-tests.txt "${target[@]}" -o requirements.txt "$@"
"$uv" pip compile requirements-label-studio.in "${target[@]}" -o requirements-label-studio.txt "$@"

# with_header LOCK LINE...: LOCK with these comment lines on top, in place of the ones an earlier run wrote.
with_header() {
  local lock=$1 body
  shift
  body=$(grep -v '^# \(Locks\|Written by\|pyproject-sha256\)' "$lock")
  { printf '%s\n' "$@"; echo "$body"; } > "$lock"
}
written="Written by scripts/lock.sh: edit pyproject.toml, then run bash scripts/lock.sh."
with_header requirements.txt "# Locks pyproject.toml's dependencies, hash-pinned, for Python 3.11 on x86-64 Linux." \
  "# $written" "# pyproject-sha256: $hash"
with_header requirements-tests.txt \
  "# Locks pyproject.toml's dependencies and its tests extra, hash-pinned, for Python 3.11 on x86-64 Linux." \
  "# $written" "# pyproject-sha256: $hash"
with_header requirements-label-studio.txt \
  "# Locks requirements-label-studio.in (Label Studio's own venv), hash-pinned, for Python 3.11 on x86-64 Linux." \
  "# Written by scripts/lock.sh: edit requirements-label-studio.in, then run bash scripts/lock.sh."
echo "lock: wrote requirements.txt, requirements-tests.txt (pyproject-sha256 ${hash:0:12}) and requirements-label-studio.txt"
