#!/usr/bin/env bash
# Set up BST Studio on a fresh Debian machine: system libraries, .venv, exact pinned packages.
# Idempotent and quick when nothing changed (a hash stamp of requirements/lock.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

# 1. System libraries: PortAudio (sound output), what Qt needs offscreen/under X, Xvfb.
need_apt=()
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
have_lib libportaudio.so.2 || need_apt+=(libportaudio2)
have_lib libEGL.so.1 || need_apt+=(libegl1)
have_lib libGL.so.1 || need_apt+=(libgl1)
have_lib libxkbcommon.so.0 || need_apt+=(libxkbcommon0 libxkbcommon-x11-0)
have_lib libfontconfig.so.1 || need_apt+=(libfontconfig1)
have_lib libdbus-1.so.3 || need_apt+=(libdbus-1-3)
# Qt's xcb plugin loads each of these (one present does not mean the others are): Debian names them
# libxcb-<name><soname version>.
for lib in cursor.0 icccm.4 keysyms.1 shape.0 xinerama.0 randr.0 render-util.0 image.0; do
  have_lib "libxcb-${lib%.*}.so.${lib##*.}" || need_apt+=("libxcb-${lib%.*}${lib##*.}")
done
command -v xvfb-run >/dev/null || need_apt+=(xvfb xauth)
fc-list 2>/dev/null | grep -qi dejavu || need_apt+=(fonts-dejavu-core)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing system packages: ${need_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install these system packages (as root): ${need_apt[*]}" >&2
  fi
fi

# 2. Virtual environment with the exact pins (torch included: see README "Why torch 2.9.1").
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.bst-lock-$(sha256sum requirements/lock.txt pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python packages (first time: a few minutes, ~7 GB with torch)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements/lock.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  rm -f .venv/.bst-lock-* && touch "$stamp"
fi
echo "setup: ready (.venv)"
