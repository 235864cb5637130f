#!/usr/bin/env bash
# Build the desktop bundle: build/bundle/bst-studio/{bst-studio,bst,_internal/} (PyInstaller
# one-folder, two executables sharing one runtime). Uses its own build venv (build/venv) with
# the exact pins of requirements/lock.txt plus requirements/build.txt (PyInstaller).
#   BST_BUNDLE_CUDA=trim|full|none         CUDA libraries to keep (see packaging/bst-studio.spec)
#   PYTHON=python3.11                      interpreter for the build venv
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
VENV=build/venv
start=$(date +%s)
if [ ! -x "$VENV/bin/pyinstaller" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q -r requirements/lock.txt -r requirements/build.txt
fi
"$VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN \
    --distpath build/bundle --workpath build/pyinstaller packaging/bst-studio.spec
out=build/bundle/bst-studio
# Desktop integration files travel with the bundle (see packaging/README.md for installing them).
mkdir -p "$out/share"
cp packaging/bst-studio.desktop packaging/bst-studio.svg packaging/bst-studio-*.png "$out/share/"
echo "built $out in $(( $(date +%s) - start )) s; size $(du -sh "$out" | cut -f1)"
