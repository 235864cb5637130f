#!/usr/bin/env bash
# Set up and run the whole test suite (lint + pytest, Qt offscreen, no network needed).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
export QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q "$@"
