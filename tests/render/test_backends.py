import numpy as np
import pytest
import trimesh
from scipy import ndimage

from hi3dgen.assets.mesh import clean
from hi3dgen.data.cameras import Camera
from hi3dgen.render.backend import agreement, get_backend
from hi3dgen.render.cameras import intrinsics, look_at, orbit_cameras


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.fixture(scope="module")
def torus():
    return clean(trimesh.creation.torus(0.35, 0.12, major_sections=24, minor_sections=12))


def test_embree_cube_normals_are_face_axes_in_camera_space():
    cube = clean(trimesh.creation.box())
    eye = np.array([1.5, 1.2, 2.0])
    cam = Camera(intrinsics(40.0, 64, 64), look_at(eye), 64, 64)
    view = get_backend("embree").render(cube, [cam])[0]
    # every pixel shows one of the three faces toward the eye (+X, +Y, +Z), in the camera frame
    expected = np.eye(3) @ cam.rotation
    nearest = np.abs(view.normal[view.mask][:, None] - expected[None]).max(-1)
    assert nearest.min(1).max() < 1e-6
    assert (np.bincount(nearest.argmin(1), minlength=3) > 50).all()
    head_on = Camera(intrinsics(40.0, 32, 32), look_at([0.0, 0.0, 3.0]), 32, 32)
    view = get_backend("embree").render(cube, [head_on])[0]
    np.testing.assert_allclose(view.normal[16, 16], [0.0, 0.0, 1.0], atol=1e-6)
    assert view.depth[16, 16] == pytest.approx(2.5, abs=1e-5)
    assert not view.mask[0, 0] and view.depth[0, 0] == 0 and (view.normal[0, 0] == 0).all()
    assert view.rgb.dtype == np.uint8 and view.rgb.shape == (32, 32, 3)
    assert (view.rgb[view.mask] > 0).all() and (view.rgb[~view.mask] == 0).all()


def test_blender_matches_embree(torus):
    """Normals within 1 degree over pixels both cover, masks agreeing on > 99% of pixels."""
    pytest.importorskip("bpy")
    cams = orbit_cameras(2, 64, seed=1)
    reference = get_backend("embree").render(torus, cams, rgb=False)
    blender = get_backend("blender", samples=4)
    views = blender.render(torus, cams, seed=1)
    again = blender.render(torus, cams[:1], seed=1)[0]  # deterministic, to the byte
    assert all(np.array_equal(getattr(views[0], k), getattr(again, k)) for k in ("normal", "mask", "depth", "rgb"))
    for ref, view in zip(reference, views):
        a = agreement(ref, view)
        assert a["mean_angle_deg"] < 1.0 and a["mask_agreement"] > 0.99, a
        assert a["max_depth_error"] < 1e-3, a
        assert view.rgb.dtype == np.uint8 and view.rgb.shape == (64, 64, 3)
        assert view.rgb[view.mask].mean() > 5  # lit
        near = ndimage.binary_dilation(view.mask, iterations=2)  # anti-aliased edges
        assert (view.rgb[~near] == 0).all()  # black background


@pytest.mark.skipif(_cuda(), reason="checks the error on machines without CUDA")
def test_nvdiffrast_without_cuda_says_so():
    with pytest.raises(RuntimeError, match="backend 'nvdiffrast' requires CUDA"):
        get_backend("nvdiffrast")


@pytest.mark.skipif(
    not _cuda(),
    reason="nvdiffrast needs CUDA; this machine has none (the GPU machine's check: bench/render.py --check-reference)",
)
def test_nvdiffrast_matches_embree(torus):
    cams = orbit_cameras(4, 64, seed=2)
    reference = get_backend("embree").render(torus, cams, rgb=False)
    for ref, view in zip(reference, get_backend("nvdiffrast").render(torus, cams)):
        a = agreement(ref, view)
        assert a["mean_angle_deg"] < 1.0 and a["mask_agreement"] > 0.99, a
