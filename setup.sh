#!/usr/bin/env bash
# Set up pad on a fresh machine: bubblewrap (the sandbox's strongest isolation layer, when it
# can be installed), a virtual environment in .venv, and pad with its test extras.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null) \
      || echo "setup: could not install bubblewrap; the sandbox will use a weaker isolation level" >&2
  else
    echo "setup: bubblewrap is not installed (apt-get install bubblewrap); the sandbox will use a weaker isolation level" >&2
  fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e ".[test]"
