#!/usr/bin/env bash
# Set up pad on a fresh machine: bubblewrap (the sandbox's strongest isolation layer, when it
# can be installed), a virtual environment in .venv, torch (CPU build), and pad with its
# test, train and ray extras.
set -euo pipefail
cd "$(dirname "$0")"
# Debian packages: bubblewrap (the sandbox's OS isolation layer) and chromium (the review
# app's browser test). Without bubblewrap, pad execute refuses to run unless given --isolation
# unshare|process.
missing=""
command -v bwrap >/dev/null 2>&1 || missing="$missing bubblewrap"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null) \
      || echo "setup: could not install$missing" >&2
  else
    echo "setup: please install$missing (apt-get install$missing)" >&2
  fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null
# torch first, pinned: the CPU build (an unpinned torch pulls several GB of CUDA packages).
# --no-compile: byte-compiling torch's files took longer than installing them.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install -q --no-compile torch==2.13.0
# The rest with uv (parallel downloads and installs: 68 s where pip took 440 s, both uncached);
# uv keeps the torch installed above. pip if uv cannot be installed.
# pad itself editable in setuptools' "compat" mode: a path in a .pth file, where the default
# mode imports a finder (and pathlib) at every Python start: 25 of the 50 ms each `pad` took
# to start, which is most of a `pad sql` poll answered by a running stage.
if .venv/bin/pip install -q uv; then
  .venv/bin/uv pip install -q --python .venv/bin/python -C editable_mode=compat -e ".[test,train,ray]"
else
  .venv/bin/pip install -q --config-settings editable_mode=compat -e ".[test,train,ray]"
fi
