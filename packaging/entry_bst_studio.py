"""Frozen entry point of the app (same as the `bst-studio` console script: bst_gui.app:main)."""
import sys

from bst_gui.app import main

if __name__ == "__main__":
    sys.exit(main())
