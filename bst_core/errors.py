"""Error types shared by the core, the CLI and the GUI."""

from __future__ import annotations


class BstError(Exception):
    """Base class for every error BST Studio reports to a person."""


class BadInputError(BstError):
    """The user's input (a file, a folder, an option) cannot be used.

    The message names the file and says what to do. The CLI maps it to exit code 2.
    """


class IncompatibleError(BadInputError):
    """Two artefacts do not fit together (encoder, class order, dimensions)."""
