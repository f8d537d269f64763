import torch

from hi3dgen import config
from hi3dgen.geometry.mesh_extract import ExtractConfig
from hi3dgen.models.shape_vae import ShapeVAE, ShapeVAEConfig, vae_loss


def tiny_vae() -> ShapeVAE:
    torch.manual_seed(0)
    return ShapeVAE(config.from_dict(ShapeVAEConfig, config.preset("vae", "tiny")["model"]))


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
