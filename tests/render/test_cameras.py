import itertools

import numpy as np
import pytest

from hi3dgen.data.cameras import Camera
from hi3dgen.render.cameras import look_at, orbit_cameras
from hi3dgen.render.nvdiff import projection

CORNERS = np.array(list(itertools.product((-0.5, 0.5), repeat=3)))


@pytest.mark.parametrize("fov, resolution", [(40.0, 64), (25.0, 33), (70.0, 128)])
def test_centre_projects_to_image_centre_and_unit_cube_fits(fov, resolution):
    cams = orbit_cameras(12, resolution, fov_deg=fov, elevation_deg=(-60.0, 80.0), seed=3)
    for cam in cams:
        R = cam.rotation
        np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)
        assert np.allclose(cam.project([[0.0, 0.0, 0.0]]), [[resolution / 2, resolution / 2]])
        # the camera looks down its -Z at the origin, +Y (up) has no downward tilt in the image
        forward = -R[:, 2]
        np.testing.assert_allclose(forward, -cam.position / np.linalg.norm(cam.position))
        uv = cam.project(CORNERS)
        assert (uv > 0).all() and (uv < resolution).all()


def test_image_axes_follow_opengl_convention():
    cam = Camera(np.array([[50.0, 0, 32], [0, 50.0, 32], [0, 0, 1]]), look_at([0, 0, 3.0]), 64, 64)
    u, v = cam.project([[0.2, 0.0, 0.0], [0.0, 0.2, 0.0]]).T
    assert u[0] > 32 and v[0] == pytest.approx(32)  # +X is right
    assert v[1] < 32 and u[1] == pytest.approx(32)  # +Y is up, image rows go down
    # pixel centres at +0.5: the ray through pixel (row 5, column 7) projects to (7.5, 5.5)
    d = cam.pixel_directions()[5, 7]
    np.testing.assert_allclose(cam.project([cam.position + cam.rotation @ d]), [[7.5, 5.5]])


def test_cameras_are_deterministic_per_seed():
    a, b, c = (orbit_cameras(6, 32, seed=s) for s in (1, 1, 2))
    assert all(np.array_equal(x.c2w, y.c2w) for x, y in zip(a, b))
    assert not all(np.allclose(x.c2w, y.c2w) for x, y in zip(a, c))
    assert Camera.from_json(a[0].to_json()).to_json() == a[0].to_json()


def test_nvdiffrast_projection_matches_camera_pixels():
    """The clip matrix maps a point to the NDC of the pixel the camera model puts it in, with
    nvdiffrast's row 0 at NDC y = -1 (checked here, without a GPU)."""
    cam = orbit_cameras(1, 48, fov_deg=35.0, seed=0)[0]
    points = np.random.default_rng(0).uniform(-0.5, 0.5, size=(20, 3))
    homogeneous = np.c_[points, np.ones(len(points))] @ np.linalg.inv(cam.c2w).T
    clip = homogeneous @ projection(cam).T
    ndc = clip[:, :3] / clip[:, 3:]
    pixel = (ndc[:, :2] + 1) / 2 * [cam.width, cam.height]
    np.testing.assert_allclose(pixel, cam.project(points), atol=1e-9)
    assert ((ndc[:, 2] > -1) & (ndc[:, 2] < 1)).all()
