"""DVC stage `render`: multi-view normals, masks, depth and RGB of the filtered assets."""

from hi3dgen import tracking
from hi3dgen.data import codec
from hi3dgen.render import RenderConfig, render_assets
from pipelines.common import OUT, executor, log_rows, section_config, stage

PREVIEW_ASSETS = 4


def preview(rows: list[dict]) -> None:
    """Normal maps and RGB of the first views of a few assets, as one MLflow image."""
    tiles = []
    for row in [r for r in rows if r["status"] == "accepted"][:PREVIEW_ASSETS]:
        d = OUT / "render" / row["dir"]
        mask = codec.decode_mask((d / "000.mask.png").read_bytes())
        tiles.append(tracking.normal_to_rgb(codec.decode_normal((d / "000.normal.png").read_bytes()), mask))
        rgb = d / "000.rgb.png"
        tiles.append(codec.decode_rgb(rgb.read_bytes()) if rgb.exists() else tiles[-1] * 0)
    if tiles:
        tracking.log_image(tracking.grid(tiles, cols=2), "render/normals_rgb.png")


def main() -> None:
    with stage("render"):
        rows = render_assets(OUT / "filter", OUT / "render", section_config(RenderConfig, "render"), executor())
        log_rows(rows)
        preview(rows)


if __name__ == "__main__":
    main()
