#!/usr/bin/env bash
# Smoke-test the built bundle in a clean environment (env -i: no .venv, no PYTHONPATH, a fresh HOME).
#   packaging/smoke.sh [bundle-dir]   (default build/bundle/bst-studio)
#   SMOKE_PYTHON=.venv/bin/python     a Python with the project's packages, used only to make test
#                                     input (a corrupt MP3; a random-weight CLAP model for a --clap bundle)
# Binding steps print ok/FAIL; the last line is "smoke: PASS" or "smoke: FAIL".
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
B=$(realpath "${1:-build/bundle/bst-studio}")
SMOKE_PYTHON=${SMOKE_PYTHON:-$repo/.venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
clean() { env -i HOME="$tmp" PATH=/usr/bin:/bin LANG=C.UTF-8 "$@"; }
fail=0
t0=$(date +%s)
step() { local name=$1; shift; if "$@" >"$tmp/$name.log" 2>&1; then echo "ok   $name ($(( $(date +%s) - t0 )) s)";
         else echo "FAIL $name"; tail -20 "$tmp/$name.log"; fail=1; fi; }
expect() { local name=$1 pattern=$2; grep -q -- "$pattern" "$tmp/$name.log" || { echo "FAIL $name: no '$pattern'"; fail=1; }; }

step version clean "$B/bst" --version
head -20 "$tmp/version.log"
step demo clean "$B/bst" demo --out "$tmp/demo"
pkg=$(ls -d "$tmp"/demo/submission/task1/*/ 2>/dev/null | head -1)
step validate clean "$B/bst" validate "${pkg:-$tmp/demo}"
tail -3 "$tmp/validate.log"

# A folder of sounds (opened, extracted with the offline encoder), and the map (umap-learn + numba).
mkdir -p "$tmp/sounds"
find "$tmp/demo" -name '*.wav' | head -4 | xargs -r cp -t "$tmp/sounds"
if [ -x "$SMOKE_PYTHON" ]; then      # a corrupt MP3: libmpg123's complaints must be folded, not printed
    "$SMOKE_PYTHON" - "$tmp/sounds/corrupt.mp3" <<'EOF' || echo "WARN could not write a test MP3"
import sys
import numpy as np, soundfile as sf
t = np.arange(44100 * 3) / 44100
sf.write(sys.argv[1], (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 44100, format="MP3")
data = bytearray(open(sys.argv[1], "rb").read())
rng = np.random.default_rng(1)
for i in range(2000, len(data) - 100, 400):
    data[i:i + 40] = rng.integers(0, 256, 40, dtype=np.uint8).tobytes()
open(sys.argv[1], "wb").write(data)
EOF
fi
clean "$B/bst" extract "$tmp/sounds" --out "$tmp/sounds.store" --json >"$tmp/extract.log" 2>"$tmp/extract.err"
rc=$?
if [ $rc -eq 0 ] && grep -q '"failed": 0' "$tmp/extract.log" && ! grep -qi "mpeg\|resync\|dequantization" "$tmp/extract.err"; then
    folded=$(grep -q '"decoder said' "$tmp/extract.log" && echo "; the MP3's decoder messages folded into its warning" || true)
    echo "ok   extract (offline encoder, $(ls "$tmp/sounds" | wc -l) files$folded)"
else echo "FAIL extract rc=$rc"; cut -c1-400 "$tmp/extract.log"; tail -5 "$tmp/extract.err"; fail=1; fi
step map clean "$B/bst" map "$tmp/demo/BSD10k-demo" --store "$tmp/demo/stores/BSD10k-demo-offline" \
    --out "$tmp/map.csv" --method umap
[ -s "$tmp/map.csv" ] && echo "     map: $(($(wc -l <"$tmp/map.csv") - 1)) points"

# The desktop integration from the bundle, into a temporary data folder.
step install clean XDG_DATA_HOME="$tmp/data" "$B/install.sh"
expect install "starts $B/bst-studio"
if command -v desktop-file-validate >/dev/null; then
    step desktop-file clean desktop-file-validate "$tmp/data/applications/bst-studio.desktop"
fi

# The app: must still be running after 5 s (timeout's 124) under the offscreen platform.
clean QT_QPA_PLATFORM=offscreen timeout 5 "$B/bst-studio" >"$tmp/app.log" 2>&1
rc=$?
if [ $rc -eq 124 ]; then echo "ok   app (offscreen, up 5 s)"; else echo "FAIL app rc=$rc"; tail -20 "$tmp/app.log"; fail=1; fi
# Under Xvfb (the xcb platform plugin takes libxcb-* from the system, as any Qt desktop app): the
# window must appear (xwininfo, from x11-utils) with a folder opened from the command line.
if command -v xvfb-run >/dev/null; then
    cat >"$tmp/xvfb.sh" <<'EOF'
# $1 the app, $2 a folder: the main window must appear (WM_CLASS ("bst-studio" "BST Studio"), not
# Qt's 1x1 leader window), then its title must name the folder once it is open.
"$1" "$2" & app=$!
up=0 opened=0
for i in $(seq 120); do
    sleep 0.5
    kill -0 $app 2>/dev/null || break
    windows=$(xwininfo -root -tree | grep '("bst-studio" "BST Studio")' | grep -v ' 1x1+')
    [ -n "$windows" ] && up=1
    if printf '%s\n' "$windows" | grep -F "\"$(basename "$2") — BST Studio\""; then opened=1; break; fi
done
kill $app 2>/dev/null; wait $app
echo "window shown: $up; folder open: $opened"
[ $up = 1 ] && [ $opened = 1 ]
EOF
    if command -v xwininfo >/dev/null; then
        clean LANG=C.UTF-8 xvfb-run -a bash "$tmp/xvfb.sh" "$B/bst-studio" "$tmp/sounds" >"$tmp/xvfb.log" 2>&1
        rc=$?
        if [ $rc -eq 0 ]; then
            echo "ok   app (xvfb-run: the window shown, the folder given on the command line open)"
            grep -m1 'BST Studio")' "$tmp/xvfb.log" | sed 's/^ */     window: /'
        else echo "FAIL app under xvfb rc=$rc"; tail -8 "$tmp/xvfb.log"; fail=1; fi
    else
        echo "WARN app under xvfb not checked: xwininfo missing (Debian: x11-utils)"
    fi
fi

# The optional CLAP part (a bundle built with build.sh --clap): embed the sounds with a
# random-weight CLAP model built by the real laion_clap.
if [ -d "$B/_internal/laion_clap" ]; then
    step clap-version clean "$B/bst" --version
    expect clap-version "encoder clap: stack installed"
    if [ -x "$SMOKE_PYTHON" ] && step clap-model clean PYTHONPATH="$repo/tests:$repo" "$SMOKE_PYTHON" -c "
from pathlib import Path
from clap_fixtures import write_random_checkpoint, write_tiny_roberta_files
write_random_checkpoint(Path('$tmp/clap/random.pt'), write_tiny_roberta_files(Path('$tmp/clap/text')))"; then
        rm -f "$tmp/sounds/corrupt.mp3"
        step clap-extract clean BST_CLAP_CHECKPOINT="$tmp/clap/random.pt" BST_CLAP_TEXT_FILES="$tmp/clap/text" \
            "$B/bst" extract "$tmp/sounds" --encoder clap --out "$tmp/clap.store" --json
        expect clap-extract '"failed": 0'
        expect clap-extract '"computed": 4'
    fi
fi
[ $fail -eq 0 ] && echo "smoke: PASS" || echo "smoke: FAIL"
exit $fail
