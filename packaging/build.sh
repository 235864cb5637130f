#!/usr/bin/env bash
# Build the desktop bundle: build/bundle/bst-studio/{bst-studio, bst, install.sh, share/, _internal/}
# (PyInstaller one-folder, two executables sharing one runtime), from the exact pins of
# requirements/lock.txt plus requirements/build.txt (PyInstaller), in its own venv (build/venv,
# updated whenever either file changes).
#
#   packaging/build.sh [--clap] [--tar] [--appimage]
#
#   --clap      the bundle with the optional CLAP stack (laion-clap, transformers, torchvision,
#               torchaudio, librosa, ...) analysed in: build/bundle-clap/bst-studio
#   --tar       also write dist/bst-studio-<version>-linux-<arch>[-clap].tar.gz
#   --appimage  refused with the reason: see "AppImage" in packaging/README.md
#   BST_BUNDLE_CUDA=trim|full|none   CUDA libraries to keep (see packaging/bst-studio.spec)
#   PYTHON=python3.11                interpreter for the build venv
#
# Prints the time of each step and the bundle's size. Not part of ./test.sh (minutes, GBs).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
VENV=build/venv
clap=0 tar=0
for arg in "$@"; do
    case $arg in
        --clap) clap=1 ;;
        --tar) tar=1 ;;
        --appimage)
            cat >&2 <<'EOF'
build.sh: --appimage cannot be built from the package registries this project reaches. An AppImage is
the AppImage runtime (a small static ELF, github.com/AppImage/type2-runtime releases) followed by a
squashfs image of the bundle; mksquashfs is in Debian (squashfs-tools), but the runtime and
appimagetool are published only on GitHub, and every PyPI tool for AppImages (python-appimage,
appimage, appimage-builder, pyproject-appimage) downloads them from there at build time.
The deliverable is the one-folder bundle and its tarball: packaging/build.sh --tar
EOF
            exit 2 ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
    esac
done
t0=$(date +%s)
lap=$t0
took() { local now; now=$(date +%s); echo "build.sh: $1 in $((now - lap)) s"; lap=$now; }

# 1. The build venv, (re)synced when the lock or the build pins change.
stamp="$VENV/.bst-build-$(cat requirements/lock.txt requirements/build.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q -r requirements/lock.txt -r requirements/build.txt
    rm -f "$VENV"/.bst-build-*
    touch "$stamp"
    took "build venv"
fi

# 2. The bundle. Offline: importing laion_clap's modules (PyInstaller does, to list them) would
#    otherwise ask the Hugging Face hub for tokenizers and retry for minutes without a network.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
variant=$( ((clap)) && echo bundle-clap || echo bundle)
BST_BUNDLE_CLAP=$clap "$VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN \
    --distpath "build/$variant" --workpath "build/pyinstaller-$variant" packaging/bst-studio.spec
out=build/$variant/bst-studio
took "PyInstaller"
# Desktop integration travels with the bundle: ./install.sh in the bundle installs it.
mkdir -p "$out/share"
cp packaging/bst-studio.desktop packaging/bst-studio.xml packaging/bst-studio.svg packaging/bst-studio-*.png "$out/share/"
cp packaging/install.sh "$out/install.sh"

echo "build.sh: built $out in $(( $(date +%s) - t0 )) s; size $(du -sh "$out" | cut -f1)"

# 4. Optional: the tarball.
if ((tar)); then
    version=$(grep -m1 '^version' pyproject.toml | cut -d'"' -f2)
    name="bst-studio-$version-linux-$(uname -m)$( ((clap)) && echo -clap || true).tar.gz"
    mkdir -p dist
    tar -C "build/$variant" -czf "dist/$name.part" bst-studio
    mv -f "dist/$name.part" "dist/$name"
    took "tarball"
    echo "build.sh: dist/$name $(du -h "dist/$name" | cut -f1)"
fi
