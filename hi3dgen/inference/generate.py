"""Image -> mesh: NiRNE normal map -> NoRLD latent (Euler sampling with classifier-free guidance)
-> shape VAE decode -> marching cubes -> GLB in the unit cube (the asset contract), with the
predicted normal map and a preview (the input, its normal map, the mesh from a few views) saved
beside it. One image or a folder of them.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

from hi3dgen import io
from hi3dgen.data import codec
from hi3dgen.geometry.mesh_extract import ExtractConfig
from hi3dgen.images import MAX_PIXELS, read_image
from hi3dgen.inference.predict import Predictor, claim_outputs, output_names, predict_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


@dataclasses.dataclass(frozen=True)
class GenerateConfig:
    steps: int = 25
    guidance: float = 3.0
    seed: int = 0
    extract: ExtractConfig = dataclasses.field(default_factory=lambda: ExtractConfig(resolution=129, coarse=33))
    margin: float = 0.1  # the condition is the object's square crop plus this share of its side on each side
    max_side: int = 1024  # NiRNE runs larger images downscaled
    max_pixels: int = MAX_PIXELS  # larger images are refused
    device: str = "auto"


def square_crop(normal: np.ndarray, fg: np.ndarray, margin: float) -> np.ndarray:
    """The foreground's bounding square (plus margin), background zero, so the object is framed as
    in the training views whatever its place in the photo."""
    ys, xs = np.nonzero(fg)
    if not len(ys):
        raise ValueError("the image has no foreground (its alpha is 0 everywhere)")
    cy, cx = (ys.min() + ys.max() + 1) / 2, (xs.min() + xs.max() + 1) / 2
    half = max(ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min()) * (0.5 + margin)
    side = max(1, int(np.ceil(2 * half)))
    out = np.zeros((side, side, 3), np.float32)
    y0, x0 = int(round(cy - side / 2)), int(round(cx - side / 2))
    src = (normal * fg[..., None])[max(0, y0) : y0 + side, max(0, x0) : x0 + side]
    out[max(0, -y0) : max(0, -y0) + src.shape[0], max(0, -x0) : max(0, -x0) + src.shape[1]] = src
    return out


class Generator:
    """The three models loaded once, for many images."""

    def __init__(self, nirne, vae, norld, cfg: GenerateConfig):
        """Models in eval mode, on one device (`load` reads them from checkpoints)."""
        if (norld.cfg.num_latents, norld.cfg.latent_dim) != (vae.cfg.num_latents, vae.cfg.latent_dim):
            raise ValueError("the NoRLD model was trained for another VAE's latent shape")
        self.nirne, self.vae, self.norld, self.cfg = nirne, vae, norld, cfg
        self.predictor = Predictor(nirne)
        self.device = next(norld.parameters()).device

    @classmethod
    def load(cls, nirne_ckpt, vae_ckpt, norld_ckpt, cfg: GenerateConfig | None = None) -> "Generator":
        from hi3dgen.device import resolve_device
        from hi3dgen.inference.checkpoints import load_nirne, load_norld, load_vae

        cfg = cfg or GenerateConfig()
        device = resolve_device(cfg.device)
        return cls(load_nirne(nirne_ckpt, device), load_vae(vae_ckpt, device), load_norld(norld_ckpt, device), cfg)

    def normal_map(self, rgb: np.ndarray) -> np.ndarray:
        return predict_image(self.predictor, rgb, self.cfg.max_side)

    def mesh_from_normal(self, normal: np.ndarray, fg: np.ndarray):
        """A normal map (H, W, 3) with its foreground -> a mesh in the unit cube (trimesh)."""
        import cv2

        from hi3dgen.assets.mesh import normalize

        size = self.norld.cfg.image_size
        crop = cv2.resize(square_crop(normal, fg, self.cfg.margin), (size, size), interpolation=cv2.INTER_AREA)
        cond = torch.from_numpy(crop.transpose(2, 0, 1).copy())[None].to(self.device)
        g = torch.Generator(self.device).manual_seed(self.cfg.seed)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            z = self.norld.sample(cond, self.cfg.steps, self.cfg.guidance, generator=g)
            with torch.no_grad():
                mesh = self.vae.extract_meshes(z.float(), self.cfg.extract)[0]
        if mesh is None:
            raise ValueError("the generated latent decodes to no surface")
        return normalize(mesh.to_trimesh())

    def __call__(self, rgb: np.ndarray, fg: np.ndarray):
        """(mesh, normal map) of an RGB image (H, W, 3) in [0, 1] with its foreground mask."""
        normal = self.normal_map(rgb)
        return self.mesh_from_normal(normal, fg), normal


def generate(image, nirne_ckpt, vae_ckpt, norld_ckpt, steps: int = 25, guidance: float = 3.0, **options):
    """One image (a path, or an (H, W, 3|4) array in [0, 1]) -> a trimesh in the unit cube."""
    gen = Generator.load(nirne_ckpt, vae_ckpt, norld_ckpt, GenerateConfig(steps=steps, guidance=guidance, **options))
    if isinstance(image, (str, os.PathLike)):
        rgb, fg = read_image(image)
    else:
        image = np.asarray(image, np.float32)
        rgb, fg = image[..., :3], (image[..., 3] > 0 if image.shape[-1] == 4 else np.ones(image.shape[:2], bool))
    return gen(rgb, fg)[0]


def preview(rgb: np.ndarray, fg: np.ndarray, normal: np.ndarray, mesh, views: int = 4, size: int = 256) -> np.ndarray:
    """The input image, its predicted normal map and the mesh shaded from `views` cameras around it,
    side by side as one (size, (2 + views) * size, 3) uint8 image: people judge a mesh by looking."""
    import cv2

    from hi3dgen.render.backend import get_backend
    from hi3dgen.render.cameras import orbit_cameras
    from hi3dgen.tracking import grid, normal_to_rgb

    def square(img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        side = max(h, w)
        out = np.zeros((side, side, 3), np.uint8)
        out[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = img
        return cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)

    image = (np.clip(rgb, 0, 1) * fg[..., None] * 255).round().astype(np.uint8)
    renders = get_backend("embree").render(mesh, orbit_cameras(views, size, elevation_deg=(10.0, 35.0)))
    return grid([square(image), square(normal_to_rgb(normal, fg)), *(v.rgb for v in renders)], cols=2 + views)


def image_paths(inputs: list[str]) -> list[Path]:
    """Files as given, and the images inside given folders (sorted)."""
    out = []
    for p in map(Path, inputs):
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out


def generate_files(
    gen: Generator, inputs: list[str], out: str | os.PathLike, overwrite: bool = False, run_id: str | None = None
) -> list[tuple[str, str, str | None]]:
    """Writes OUT (one image: a .glb path) or OUT/<name>.glb (several, or a folder; names as
    `predict.output_names`), each with <name>.normal.png and <name>.preview.png beside it, also
    logged to the MLflow run `run_id` when given (under `generate/`); returns (input, mesh, error or
    None) per image."""
    from hi3dgen import tracking
    from hi3dgen.assets.mesh import save_glb

    paths = image_paths(inputs)
    out = Path(out)
    if len(paths) == 1 and out.suffix.lower() == ".glb":
        targets = [[out, out.with_suffix(".normal.png"), out.with_suffix(".preview.png")]]
        folders = ["generate"]
    else:
        names = output_names(paths)
        targets = [[out / f"{n}.glb", out / f"{n}.normal.png", out / f"{n}.preview.png"] for n in names]
        folders = [Path("generate", n).parent.as_posix() for n in names]
    results = []
    for path, files, folder, problem in zip(paths, targets, folders, claim_outputs(targets, overwrite)):
        glb, normal_png, preview_png = files
        if problem:
            results.append((str(path), str(glb), problem))
            continue
        try:
            rgb, fg = read_image(path, gen.cfg.max_pixels)
            mesh, normal = gen(rgb, fg)
            save_glb(mesh, glb)
            io.write_bytes(normal_png, codec.encode_normal(normal, fg))
            io.write_bytes(preview_png, codec.encode_rgb(preview(rgb, fg, normal, mesh)))
            if run_id:
                tracking.log_files(run_id, files, folder)
            results.append((str(path), str(glb), None))
        except (OSError, ValueError) as exc:
            results.append((str(path), str(glb), str(exc)))
    return results
