"""hi3dgen: the open, reproducible training pipeline for Hi3DGen (image -> normal map -> 3D geometry)."""

__version__ = "0.1.0"
