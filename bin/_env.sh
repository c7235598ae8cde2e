# Sourced by bin/demo and bin/test: find Python >= 3.11, make .venv, install the project.
# Reinstalls only when pyproject.toml (or the client's) changes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

find_python() {
  for candidate in "${PYTHON:-}" python3 python3.13 python3.12 python3.11 python; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "Trustladder needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

if [ ! -x .venv/bin/python ]; then
  "$(find_python)" -m venv .venv
fi
stamp=.venv/.trustladder-installed
want=$(cat pyproject.toml clients/python/pyproject.toml 2>/dev/null | sha256sum | cut -c1-16 || true)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "Installing Trustladder and its dependencies into .venv ..." >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  extra=()
  [ -f clients/python/pyproject.toml ] && extra=(-e clients/python)
  .venv/bin/python -m pip install --quiet -e ".[dev]" "${extra[@]}"
  echo "$want" > "$stamp"
fi
