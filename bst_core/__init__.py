"""BST Studio core: classify sounds into the Broad Sound Taxonomy (no Qt, ever)."""

__version__ = "0.1.0"
