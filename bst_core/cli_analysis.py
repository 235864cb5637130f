"""``bst`` commands that analyse a source or a run beyond the challenge loop (similar, explain,
issues, report, ...). Each is a thin caller of :mod:`bst_core.pipeline` or an analysis module."""

from __future__ import annotations

import argparse


def add_analysis_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the analysis subcommands on the ``bst`` parser's subparsers (none yet)."""
    del sub
