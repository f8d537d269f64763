import numpy as np
import pytest
import torch

from hi3dgen.data.cameras import batch_cameras
from hi3dgen.render.diff_normals import clip_matrices, normal_error, render_normal_batch, render_normals
from tests.training.test_norld import make_trainer, tiny, vae_path  # noqa: F401 (vae_path: the fixture)


def skimage_regularizer(t, z, batch):
    """Today's per-sample path: scikit-image marching cubes on the host, one render per mesh."""
    reg = t.run_cfg.reg
    errors = []
    for i, mesh in enumerate(t.vae.extract_meshes(z, reg.extract)):
        maps = render_normals(mesh.vertices.float(), mesh.faces, batch_cameras(batch, i)[: reg.views])
        gt = batch["normals"][i, : reg.views].permute(0, 2, 3, 1)
        errors.append(normal_error(maps, gt, batch["masks"][i, : reg.views]))
    return torch.stack(errors).mean()


def test_matches_the_skimage_path_in_value_and_gradient(vae_path, tmp_path):  # noqa: F811
    """Same vertices, another triangulation of the same polygons: the loss agrees to 1% (measured
    0.1%), the gradient's direction over 4 samples to cosine > 0.8 (measured 0.88; a single sample
    with few pixels can be as low as 0.3: flat-shaded normals' gradients depend on the triangles)."""
    t = make_trainer(tiny(vae_path, 1), tmp_path / "run")
    batch = t._to_device(next(t.data))
    with torch.no_grad():
        z0 = t.vae.encode(batch["surface"][:4]).mean
    z_old, z_new = z0.clone().requires_grad_(True), z0.clone().requires_grad_(True)
    old = skimage_regularizer(t, z_old, batch)
    new = t.normal_regularizer(z_new, batch, torch.arange(4))
    assert new.item() == pytest.approx(old.item(), rel=0.01)
    (g_old,), (g_new,) = torch.autograd.grad(old, z_old), torch.autograd.grad(new, z_new)
    assert torch.nn.functional.cosine_similarity(g_old.flatten(), g_new.flatten(), dim=0) > 0.8
    assert t._reg_stats["reg_overflow"] == 0 and t._reg_stats["reg_faces"] > 1000


def test_training_with_the_regularizer_on_every_step_lowers_the_loss(vae_path, tmp_path):  # noqa: F811
    t = make_trainer(tiny(vae_path, 40, share=1.0, t_min=0.0, t_max=1.0), tmp_path / "run")
    t.train()
    loss = [h["train/loss"] for h in t.history]
    reg = [h["train/normal_reg_loss"] for h in t.history]
    assert np.mean(loss[-10:]) < 0.8 * np.mean(loss[:5]), loss
    assert all(r > 0 for r in reg) and all(h["train/reg_overflow"] == 0 for h in t.history)


def test_batched_render_equals_one_mesh_at_a_time():
    import trimesh

    from hi3dgen.render.cameras import intrinsics, look_at

    cams = [(intrinsics(40, 24, 24), look_at(np.array(e))) for e in ((0.0, 0.0, 2.0), (2.0, 1.0, 1.5))]
    K = torch.tensor(np.stack([k for k, _ in cams]))[None].expand(2, -1, -1, -1)
    c2w = torch.tensor(np.stack([c for _, c in cams]))[None].expand(2, -1, -1, -1)
    a, b = trimesh.creation.icosphere(2, radius=0.4), trimesh.creation.box((0.6, 0.4, 0.5))
    v = torch.zeros(2, len(a.vertices), 3, dtype=torch.float64)
    f = torch.zeros(2, len(a.faces) + 5, 3, dtype=torch.long)  # padded with degenerate faces
    v[0], v[1, : len(b.vertices)] = torch.tensor(a.vertices), torch.tensor(b.vertices)
    f[0, : len(a.faces)], f[1, : len(b.faces)] = torch.tensor(a.faces), torch.tensor(b.faces)
    out = render_normal_batch(v, f, K, c2w, (24, 24))
    from hi3dgen.data.cameras import Camera

    for i, mesh in enumerate((a, b)):
        ref = render_normals(
            torch.tensor(mesh.vertices), torch.tensor(mesh.faces), [Camera(k, c, 24, 24) for k, c in cams]
        )
        assert torch.equal(out.mask[i], ref.mask) and torch.allclose(out.normal[i], ref.normal)


def test_clip_matrices_equal_the_renderers_projection():
    from hi3dgen.data.cameras import Camera
    from hi3dgen.render.cameras import intrinsics, look_at
    from hi3dgen.render.nvdiff import projection

    cam = Camera(intrinsics(35, 40, 30), look_at(np.array([1.0, 2.0, 1.5])), 40, 30)
    ours = clip_matrices(torch.tensor(cam.K)[None], torch.tensor(cam.c2w)[None], cam.height, cam.width)[0]
    assert np.allclose(ours.numpy(), projection(cam) @ np.linalg.inv(cam.c2w), atol=1e-9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the CUDA path (run on the GPU machine)")
def test_cuda_path_has_no_host_sync_and_matches_the_cpu_path(vae_path, tmp_path):  # noqa: F811
    """torch's sync debug mode raises on any synchronizing torch op (nvdiffrast's own wait for its
    buffers, inside the plugin, is not one); nvdiffrast's visibility agrees with embree's."""
    from hi3dgen.geometry.mesh_extract import ExtractConfig
    from hi3dgen.training import regularizer
    from hi3dgen.training.regularizer import RegularizerConfig

    t = make_trainer(tiny(vae_path, 1), tmp_path / "run")
    batch = t._to_device(next(t.data))
    with torch.no_grad():
        z = t.vae.encode(batch["surface"][:2]).mean
    cfg = RegularizerConfig(extract=ExtractConfig(resolution=24), max_faces=16384)
    views = [batch[k][:2, :2] for k in ("normals", "masks", "K", "c2w")]
    cpu = regularizer.normal_regularizer(t.vae, z, *views, cfg)
    vae = t.vae.cuda()
    args = [v.cuda() for v in views]
    zc = z.cuda().requires_grad_(True)
    regularizer.normal_regularizer(vae, zc, *args, cfg)  # warm-up: plugin, tables
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = regularizer.normal_regularizer(vae, zc, *args, cfg)
        out.errors.sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.allclose(out.errors.detach().cpu(), cpu.errors, atol=0.02)
    assert torch.isfinite(zc.grad).all() and zc.grad.abs().sum() > 0
