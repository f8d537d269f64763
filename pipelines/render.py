"""DVC stage `render`: multi-view normals, masks, depth and RGB of the filtered assets."""

from hi3dgen.render import RenderConfig, render_assets
from pipelines.common import OUT, config, executor


def main() -> None:
    render_assets(OUT / "filter", OUT / "render", config(RenderConfig, "render"), executor())


if __name__ == "__main__":
    main()
