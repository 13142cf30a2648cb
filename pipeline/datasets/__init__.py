"""Data sources, each producing the same normalised layout (see docs/data-formats.md)."""
