#!/usr/bin/env bash
# The second way in, checked end to end: build the wheel from the clean tree, install it with pipx
# (or python -m venv + pip where pipx cannot be had) into a FRESH environment with the exact pins of
# requirements/lock.txt as constraints, and run both programs from there in a clean environment.
#
#   packaging/wheel_check.sh [--worktree] [--clap] [--keep]
#
#   (default)   the tree of HEAD (git archive: what a release is built from)
#   --worktree  the working tree instead (tracked and new, not-ignored files)
#   --clap      then add the clap extra (pipx runpip ... "bst-studio[gui,clap]") and embed three
#               sounds with CLAP (random weights, built by the real laion_clap: no download)
#   --keep      keep the temporary folder (printed at the end)
#   PYTHON=python3.11   interpreter for the environment
#
# Writes the wheel to dist/ (gitignored). Steps print "ok"/"FAIL"; the last line is
# "wheel-check: PASS" or "wheel-check: FAIL". Installs torch (the lock's CUDA build): a few minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
PYTHON=${PYTHON:-python3.11}
PIPX_VERSION=1.18.4
tree=head clap=0 keep=0
for arg in "$@"; do
    case $arg in
        --worktree) tree=worktree ;;
        --clap) clap=1 ;;
        --keep) keep=1 ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "wheel_check.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done
work=$(mktemp -d "${TMPDIR:-/tmp}/bst-wheel-check.XXXXXX")
((keep)) || trap 'rm -rf "$work"' EXIT
fail=0
t0=$(date +%s)
elapsed() { echo "$(( $(date +%s) - t0 )) s"; }
step() {   # step NAME CMD...: run, log to $work/NAME.log, print ok/FAIL (+ the log's tail)
    local name=$1; shift
    if "$@" >"$work/$name.log" 2>&1; then echo "ok   $name ($(elapsed))"
    else echo "FAIL $name ($(elapsed))"; tail -25 "$work/$name.log"; fail=1; fi
}
# The installed programs run with nothing of this shell: no .venv, no PYTHONPATH, a fresh HOME.
clean() { env -i HOME="$work/home" PATH="$work/bin:/usr/bin:/bin" LANG=C.UTF-8 "$@"; }
mkdir -p "$work/src" "$work/home" "$work/bin" dist

# 1. The source tree, without build/, .venv, egg-info or caches.
if [ $tree = head ]; then
    step source bash -c "git archive HEAD | tar -x -C '$work/src'"
else
    step source bash -c "git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t '$work/src'"
fi

# 2. The wheel (pip builds it with the pyproject's backend, setuptools>=77, in an isolated env).
step wheel "$PYTHON" -m pip wheel -q --no-deps -w "$work/dist" "$work/src"
whl=$(ls "$work"/dist/bst_studio-*.whl 2>/dev/null | head -1)
[ -n "$whl" ] || { echo "wheel-check: FAIL (no wheel)"; exit 1; }
cp "$whl" dist/
echo "     wheel: dist/$(basename "$whl") ($(du -k "$whl" | cut -f1) KiB)"
step contents "$PYTHON" - "$whl" <<'EOF'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = {"bst_core/data/bst_taxonomy.csv", "bst_gui/icons/bst-studio.svg", "bst_core/cli.py", "bst_gui/app.py"}
missing = sorted(need - names)
stray = sorted(n for n in names if n.split("/")[0] in {"tests", "benchmarks", "packaging", "scripts", "build"})
print(f"{len(names)} files; missing {missing or 'none'}; stray {stray or 'none'}")
sys.exit(1 if missing or stray else 0)
EOF

# 3. A fresh environment: pipx (from the package index) if it installs, else venv + pip.
constraints="$repo/requirements/lock.txt"
if "$PYTHON" -m venv "$work/tools" >/dev/null 2>&1 \
        && "$work/tools/bin/pip" install -q "pipx==$PIPX_VERSION" >"$work/pipx-install.log" 2>&1; then
    installer="pipx $PIPX_VERSION"
    export PIPX_HOME="$work/pipx" PIPX_BIN_DIR="$work/bin" PIPX_MAN_DIR="$work/man"
    venv="$PIPX_HOME/venvs/bst-studio"
    step install "$work/tools/bin/pipx" install --python "$(command -v "$PYTHON")" \
        --pip-args="-c $constraints" "$whl[gui]"
    add_clap() { "$work/tools/bin/pipx" runpip bst-studio install -c "$constraints" "$whl[gui,clap]"; }
else
    installer="python -m venv + pip (pipx did not install: see $work/pipx-install.log)"
    venv="$work/venv"
    step install bash -c "'$PYTHON' -m venv '$venv' && '$venv/bin/pip' install -c '$constraints' '$whl[gui]' \
        && ln -s '$venv/bin/bst' '$venv/bin/bst-studio' '$work/bin/'"
    add_clap() { "$venv/bin/pip" install -c "$constraints" "$whl[gui,clap]"; }
fi
echo "     installer: $installer; environment $(du -sh "$venv" 2>/dev/null | cut -f1)"

# 4. Both programs, from the fresh environment only.
step version clean bst --version
sed 's/^/     /' "$work/version.log"
grep -q "encoder clap: stack not installed" "$work/version.log" \
    || { echo "FAIL version: the gui extra alone should not bring the CLAP stack"; fail=1; }
step cli-help clean bst --help
step demo clean bst demo --out "$work/demo"
pkg=$(ls -d "$work"/demo/submission/task1/*/ 2>/dev/null | head -1)
step validate clean bst validate "${pkg:-$work/demo/missing}"
tail -1 "$work/validate.log" | sed 's/^/     /'
step app-help clean bst-studio --help
# The window: still running after 8 s (timeout's 124) on the offscreen platform.
clean QT_QPA_PLATFORM=offscreen timeout 8 bst-studio >"$work/app.log" 2>&1
rc=$?
if [ $rc -eq 124 ]; then echo "ok   app (offscreen, up 8 s) ($(elapsed))"
else echo "FAIL app rc=$rc"; tail -20 "$work/app.log"; fail=1; fi

# 5. Optional: the clap extra, and a CLAP embedding with a random-weight model (no download).
if ((clap)); then
    step clap-install add_clap
    step clap-version clean bst --version
    grep "encoder clap" "$work/clap-version.log" | sed 's/^/     /'
    grep -q "encoder clap: stack installed" "$work/clap-version.log" \
        || { echo "FAIL clap-version: the CLAP stack is not seen"; fail=1; }
    mkdir -p "$work/sounds"
    find "$work/demo" -name '*.wav' | head -3 | xargs -r cp -t "$work/sounds"
    step clap-model clean PYTHONPATH="$work/src/tests" "$venv/bin/python" -c "
from pathlib import Path
from clap_fixtures import write_random_checkpoint, write_tiny_roberta_files
text = write_tiny_roberta_files(Path('$work/clap/text'))
write_random_checkpoint(Path('$work/clap/random.pt'), text)"
    step clap-extract clean BST_CLAP_CHECKPOINT="$work/clap/random.pt" BST_CLAP_TEXT_FILES="$work/clap/text" \
        bst extract "$work/sounds" --encoder clap --out "$work/clap/store" --json
    tail -1 "$work/clap-extract.log" | cut -c1-200 | sed 's/^/     /'
    grep -q '"computed": 3' "$work/clap-extract.log" || { echo "FAIL clap-extract: 3 sounds not computed"; fail=1; }
    echo "     environment with clap: $(du -sh "$venv" | cut -f1)"
fi

((keep)) && echo "kept $work"
echo "total $(elapsed)"
[ $fail -eq 0 ] && echo "wheel-check: PASS" || echo "wheel-check: FAIL"
exit $fail
