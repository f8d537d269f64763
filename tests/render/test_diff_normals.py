import numpy as np
import pytest
import torch
import trimesh

from hi3dgen.data.cameras import Camera
from hi3dgen.render.cameras import intrinsics, look_at
from hi3dgen.render.diff_normals import normal_error, render_normals, resize_camera


def cameras(res=32):
    eyes = [(0.0, 0.0, 2.0), (2.0, 1.0, 1.5), (0.3, -2.0, 0.1)]
    return [Camera(intrinsics(40, res, res), look_at(np.array(e)), res, res) for e in eyes]


def test_box_shows_its_face_normals_in_camera_space():
    box = trimesh.creation.box((0.6, 0.4, 0.5))
    cams = cameras()
    out = render_normals(torch.tensor(box.vertices), torch.tensor(box.faces), cams, backend="embree")
    # the front camera sees only the +Z face: camera-space normal (0, 0, 1) everywhere on the mask
    front = out.normal[0][out.mask[0]]
    assert out.mask[0].sum() > 50 and torch.allclose(front, torch.tensor([0.0, 0.0, 1.0], dtype=front.dtype))
    # every pixel of every view is one of the six axis normals rotated into that camera
    for cam, n, m in zip(cams, out.normal, out.mask):
        axes = np.concatenate([np.eye(3), -np.eye(3)]) @ cam.rotation  # world -> camera
        d = np.abs(n[m].numpy()[:, None] - axes[None]).sum(-1).min(1)
        assert d.max() < 1e-6
        assert not n[~m].any()


def test_matches_the_dataset_renderer():
    from hi3dgen.render.embree import EmbreeBackend

    mesh = trimesh.creation.icosphere(2, radius=0.4)
    cams = cameras()
    ref = EmbreeBackend().render(mesh, cams, rgb=False)
    out = render_normals(torch.tensor(mesh.vertices), torch.tensor(mesh.faces), cams)
    for r, n, m in zip(ref, out.normal, out.mask):
        assert np.array_equal(r.mask, m.numpy())
        assert np.abs(r.normal - n.numpy()).max() < 1e-5


def test_gradient_reaches_the_vertices():
    mesh = trimesh.creation.icosphere(1, radius=0.4)
    v = torch.tensor(mesh.vertices, requires_grad=True)
    cams = [resize_camera(c, 24) for c in cameras()]
    gt = render_normals(torch.tensor(mesh.vertices) * 1.05, torch.tensor(mesh.faces), cams)
    noisy = v + 0.02 * torch.randn_like(v, generator=torch.Generator().manual_seed(0))
    faces = torch.tensor(mesh.faces)
    loss = normal_error(render_normals(noisy, faces, cams), gt.normal, gt.mask)
    (grad,) = torch.autograd.grad(loss, v)
    assert torch.isfinite(grad).all()
    with torch.no_grad():  # a small step against the gradient lowers the error: it points the right way
        stepped = noisy - 1e-3 * grad / grad.norm(dim=1).max()
        assert normal_error(render_normals(stepped, faces, cams), gt.normal, gt.mask) < loss


def test_cuda_backend_needs_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="CUDA"):
        render_normals(torch.zeros(3, 3), torch.zeros(1, 3, dtype=torch.long), cameras(), backend="nvdiffrast")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="nvdiffrast needs a CUDA device (run on the GPU machine)")
def test_nvdiffrast_matches_embree_and_passes_gradients():
    mesh = trimesh.creation.icosphere(3, radius=0.4)
    cams = cameras(64)
    ref = render_normals(torch.tensor(mesh.vertices), torch.tensor(mesh.faces), cams, backend="embree")
    v = torch.tensor(mesh.vertices, dtype=torch.float32, device="cuda", requires_grad=True)
    out = render_normals(v, torch.tensor(mesh.faces, device="cuda"), cams, backend="nvdiffrast")
    mask, normal = out.mask.cpu(), out.normal.detach().cpu()
    assert (ref.mask == mask).float().mean() > 0.99
    both = ref.mask & mask
    cos = (ref.normal[both].float() * normal[both]).sum(-1).clamp(-1, 1)
    assert torch.rad2deg(torch.acos(cos)).mean() < 1.0
    out.normal[out.mask].sum().backward()
    assert v.grad.abs().sum() > 0 and torch.isfinite(v.grad).all()
