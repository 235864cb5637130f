#!/usr/bin/env bash
# Set up and run BST Studio: the app on a screen; headless, the offline demo (the main job).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] || [ "${QT_QPA_PLATFORM:-}" = offscreen ]; then
  exec .venv/bin/bst-studio "$@"
fi
cat <<'MSG'
No screen here, so the app window cannot open. To see it: `xvfb-run -a .venv/bin/bst-studio`
(virtual screen) or `QT_QPA_PLATFORM=offscreen .venv/bin/bst-studio`. Running the main job
headless instead: the offline demo (synthetic sounds, offline encoder, 5-fold CV, submission).
MSG
exec .venv/bin/bst demo --out "${BST_DEMO_OUT:-demo_out}"
