"""Multi-view rendering: cameras around each asset, backends (embree CPU, blender RGB, nvdiffrast
CUDA) behind one interface, and the render stage writing per-view samples."""

from hi3dgen.render.stage import RenderConfig, render_assets

__all__ = ["RenderConfig", "render_assets"]
