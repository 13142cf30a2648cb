"""The networks: one idea per file (docs/architecture.md)."""
