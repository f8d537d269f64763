import dataclasses

import pytest
import torch

from hi3dgen import config
from hi3dgen.geometry.mesh_extract import ExtractConfig
from hi3dgen.models.shape_vae import ShapeVAE, ShapeVAEConfig, farthest_points, vae_loss


def tiny_vae(**model) -> ShapeVAE:
    torch.manual_seed(0)
    return ShapeVAE(config.from_dict(ShapeVAEConfig, {**config.preset("vae", "tiny")["model"], **model}))


def test_shapes_and_loss_parts():
    vae = tiny_vae()
    cfg = vae.cfg
    surface = torch.randn(2, cfg.num_points, 6)
    sdf = torch.randn(2, 100, 4)
    post = vae.encode(surface)
    assert post.mean.shape == (2, cfg.num_latents, cfg.latent_dim)
    pred, post = vae(surface, torch.cat([sdf[..., :3], surface[..., :3]], 1))
    assert pred.shape == (2, 100 + cfg.num_points)
    loss, parts = vae_loss(cfg, pred, post, sdf)
    assert loss.ndim == 0 and set(parts) == {"sdf_loss", "surface_loss", "kl", "sign_acc"}


def test_mesh_loss_reaches_the_latent_and_agrees_with_finite_differences():
    vae = tiny_vae().double()
    # a latent whose decoded SDF has a surface: bias the SDF head so the zero level crosses the grid
    with torch.no_grad():
        vae.to_sdf[1].bias.fill_(0.0)
    z = torch.randn(1, vae.cfg.num_latents, vae.cfg.latent_dim, dtype=torch.float64, requires_grad=True)
    cfg = ExtractConfig(resolution=12)

    def loss_of(latent):
        tokens = vae.decode(latent)
        fn = lambda x: vae.query(tokens, x[None].double())[0] - 0.05 * (1 - (x.double() ** 2).sum(-1))  # noqa: E731
        from hi3dgen.geometry.mesh_extract import extract

        mesh = extract(fn, cfg)
        return mesh.vertices.pow(2).sum(1).mean(), len(mesh.faces)

    loss, faces = loss_of(z)
    loss.backward()
    assert z.grad.abs().sum() > 0
    direction = torch.randn_like(z)
    h = 1e-6
    with torch.no_grad():
        (lp, fp), (lm, fm) = loss_of(z + h * direction), loss_of(z - h * direction)
    assert fp == fm == faces
    fd = ((lp - lm) / (2 * h)).item()
    assert abs(fd - (z.grad * direction).sum().item()) < 1e-5 * max(1.0, abs(fd))


def test_extract_meshes_uses_the_decoder():
    vae = tiny_vae()
    z = torch.randn(2, vae.cfg.num_latents, vae.cfg.latent_dim)
    meshes = vae.extract_meshes(z, ExtractConfig(resolution=8))
    assert len(meshes) == 2


def test_farthest_points_spread_over_the_set():
    xyz = torch.rand(2, 500, 3, generator=torch.Generator().manual_seed(0))
    idx = farthest_points(xyz, 32)
    assert idx.shape == (2, 32) and torch.equal(idx, farthest_points(xyz, 32))
    assert all(len(set(row.tolist())) == 32 for row in idx) and (idx[:, 0] == 0).all()
    picked = xyz[0, idx[0]]
    gap = torch.cdist(picked, picked).fill_diagonal_(9).min()
    rand = xyz[0, :32]
    assert gap > 2 * torch.cdist(rand, rand).fill_diagonal_(9).min()  # far apart, unlike a random subset
    cover = torch.cdist(xyz[0], picked).min(1).values.max()
    assert cover < gap  # every point lies nearer to a picked one than picked ones to each other


def test_fps_queries_are_points_of_the_input():
    """The encoder's queries come from the input (no learned queries): permuting the points
    after the first keeps the latent up to the order of the tokens."""
    vae = tiny_vae(queries="fps").eval()
    assert vae.queries is None
    surface = torch.randn(1, vae.cfg.num_points, 6)
    perm = torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(vae.cfg.num_points - 1)])
    a, b = vae.encode(surface).mean[0], vae.encode(surface[:, perm]).mean[0]
    assert torch.allclose(a.sort(0).values, b.sort(0).values, atol=1e-5)
    with pytest.raises(ValueError, match="num_latents"):
        ShapeVAEConfig(num_latents=64, num_points=32)


def test_tanh_sdf_loss_weights_errors_near_the_surface_and_is_bounded_far_away():
    vae = tiny_vae()
    cfg = vae.cfg
    post = vae.encode(torch.zeros(1, cfg.num_points, 6))
    xyz = torch.zeros(1, 2, 3)

    def sdf_loss(pred, target, **overrides):
        c = dataclasses.replace(cfg, **{"sdf_loss": "tanh", "sdf_band": 0.01, **overrides})
        sdf = torch.cat([xyz, torch.tensor(target).view(1, -1, 1)], -1)
        return float(vae_loss(c, torch.tensor(pred).view(1, -1), post, sdf)[1]["sdf_loss"])

    assert sdf_loss([0.003, -0.2], [0.003, -0.2]) == 0.0
    near, far = sdf_loss([0.008, 0.0], [0.003, 0.0]), sdf_loss([0.0, 0.305], [0.0, 0.3])
    assert near > 100 * far  # the same 0.005 error counts where the mesh is, not far from it
    assert sdf_loss([5.0, -5.0], [-5.0, 5.0]) <= 2.0  # bounded: tanh saturates
    # the clamp loss sees the two errors alike
    assert sdf_loss([0.008, 0.0], [0.003, 0.0], sdf_loss="clamp") == pytest.approx(
        sdf_loss([0.0, 0.055], [0.0, 0.05], sdf_loss="clamp")
    )
    with pytest.raises(ValueError, match="sdf_loss"):
        dataclasses.replace(cfg, sdf_loss="mse")
    with pytest.raises(ValueError, match="sdf_band"):
        dataclasses.replace(cfg, sdf_band=0.0)
