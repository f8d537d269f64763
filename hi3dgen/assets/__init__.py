"""Mesh loading, normalization, validation and GLB writing (the Asset contract of DESIGN.md)."""
