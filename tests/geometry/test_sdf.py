import numpy as np
import pytest
import trimesh

from hi3dgen.geometry.sdf import MeshSDF, shape_samples

RNG = np.random.default_rng(0)
POINTS = RNG.uniform(-0.55, 0.55, (3000, 3))


def box_sdf(p, half):
    q = np.abs(p) - half
    return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(1), 0)


def test_box_matches_analytic_sdf():
    half = np.array([0.5, 0.3, 0.2])
    sdf = MeshSDF(trimesh.creation.box(2 * half), leaf=4).signed_distance(POINTS)
    assert np.abs(sdf - box_sdf(POINTS, half)).max() < 1e-9


def test_sphere_matches_analytic_sdf():
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=0.4)
    sdf = MeshSDF(mesh).signed_distance(POINTS)
    exact = np.linalg.norm(POINTS, axis=1) - 0.4
    assert np.abs(sdf - exact).max() < 2e-3  # the icosphere's chord error
    clear = np.abs(exact) > 2e-3
    assert np.array_equal(sdf[clear] < 0, exact[clear] < 0)


def test_fast_winding_number_matches_exact():
    mesh = trimesh.creation.torus(0.3, 0.1, major_sections=32, minor_sections=16)
    pts = POINTS[:500]
    fast, exact = MeshSDF(mesh, leaf=16).winding_number(pts), MeshSDF(mesh, beta=np.inf).winding_number(pts)
    assert np.abs(fast - exact).max() < 0.05


def test_sign_right_far_from_a_hole_and_in_overlapping_parts():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    holed = trimesh.Trimesh(sphere.vertices, sphere.faces[sphere.triangles_center[:, 1] < 0.3])
    assert not holed.is_watertight
    r = np.linalg.norm(POINTS, axis=1)
    far = (np.linalg.norm(POINTS - [0, 0.4, 0], axis=1) > 0.3) & (np.abs(r - 0.4) > 0.01)
    sdf = MeshSDF(holed).signed_distance(POINTS)
    assert np.array_equal(sdf[far] < 0, r[far] < 0.4)

    cross = trimesh.util.concatenate([trimesh.creation.box((0.6, 0.2, 0.2)),
                                      trimesh.creation.box((0.2, 0.6, 0.2))])
    inside = MeshSDF(cross).signed_distance(np.array([[0.0, 0, 0], [0.05, 0.05, 0], [0.25, 0, 0]]))
    assert (inside < 0).all()  # ray parity calls the overlap outside

    flipped = sphere.copy()
    flipped.invert()  # a part wound inside out still counts as solid
    assert MeshSDF(flipped).signed_distance(np.zeros((1, 3)))[0] < 0


def test_shape_samples_are_deterministic_with_right_layout():
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    mesh.invert()  # prepare() turns it outward again
    kw = dict(surface_points=300, sdf_points=1000, near_sigmas=(0.005, 0.05), uniform_fraction=0.4)
    a, b = shape_samples(mesh, seed=7, **kw), shape_samples(mesh, seed=7, **kw)
    assert np.array_equal(a["surface"], b["surface"]) and np.array_equal(a["sdf"], b["sdf"])
    assert not np.array_equal(a["sdf"], shape_samples(mesh, seed=8, **kw)["sdf"])
    assert a["surface"].shape == (300, 6) and a["sdf"].shape == (1000, 4)
    assert a["surface"].dtype == a["sdf"].dtype == np.float32
    assert a["counts"] == {"near": [300, 300], "uniform": 400}
    assert (np.einsum("ij,ij->i", a["surface"][:, :3], a["surface"][:, 3:]) > 0).all()
    near = a["sdf"][:300]
    assert np.abs(near[:, 3]).mean() < 0.01
    uniform = a["sdf"][600:, :3]
    assert np.abs(uniform).max() <= 0.55
    assert a["inside_fraction"] == pytest.approx(4 / 3 * np.pi * 0.125 / 1.1**3, abs=0.08)
