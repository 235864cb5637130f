"""Frozen entry point of the `bst` CLI (same as the `bst` console script: bst_core.cli:main)."""
import sys

from bst_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
