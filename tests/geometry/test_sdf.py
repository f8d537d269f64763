import numpy as np
import pytest
import trimesh

from hi3dgen.geometry.sdf import MeshSDF, prepare, shape_samples, sharp_edge_samples, split_long_faces

RNG = np.random.default_rng(0)
POINTS = RNG.uniform(-0.55, 0.55, (3000, 3))


def box_sdf(p, half):
    q = np.abs(p) - half
    return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(1), 0)


def exact_winding_number(mesh, points):
    """Reference: every face's signed solid angle (van Oosterom and Strackee), summed, over 4π."""
    a, b, c = (mesh.triangles[None, :, i] - points[:, None] for i in range(3))
    la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
    det = np.einsum("pfi,pfi->pf", a, np.cross(b, c))
    den = la * lb * lc + (a * b).sum(-1) * lc + (b * c).sum(-1) * la + (c * a).sum(-1) * lb
    return 2.0 * np.arctan2(det, den).sum(1) / (4.0 * np.pi)


def test_box_matches_analytic_sdf():
    half = np.array([0.5, 0.3, 0.2])
    box = MeshSDF(trimesh.creation.box(2 * half))  # 12 faces, each cut into strips first
    assert np.abs(box.signed_distance(POINTS) - box_sdf(POINTS, half)).max() < 1e-9
    assert box.signed_distance(np.zeros((0, 3))).shape == (0,)


def test_sphere_matches_analytic_sdf():
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=0.4)
    sdf = MeshSDF(mesh).signed_distance(POINTS)
    exact = np.linalg.norm(POINTS, axis=1) - 0.4
    assert np.abs(sdf - exact).max() < 2e-3  # the icosphere's chord error
    clear = np.abs(exact) > 2e-3
    assert np.array_equal(sdf[clear] < 0, exact[clear] < 0)


def test_fast_winding_number_matches_exact():
    torus = trimesh.creation.torus(0.3, 0.1, major_sections=32, minor_sections=16)
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    open_cap = trimesh.Trimesh(sphere.vertices, sphere.faces[sphere.triangles_center[:, 1] < 0.2])
    pts = POINTS[:300]
    for mesh in (torus, open_cap):
        exact = exact_winding_number(mesh, pts)
        assert np.abs(MeshSDF(mesh).winding_number(pts) - exact).max() < 0.05
    assert ((exact > 0.2) & (exact < 0.8)).sum() > 10  # the open cap's winding number is not just 0 or 1


def test_split_long_faces_keeps_the_surface():
    tris = np.array(
        [
            [[0, 0, 0], [1, 0, 0], [0, 0.01, 0]],  # a sliver
            [[0, 0, 1], [0.4, 0.7, 1], [-0.5, 0.3, 1.2]],
        ],
        dtype=np.float64,
    )  # a wide face
    pieces = split_long_faces(tris, 0.1)
    edges = np.linalg.norm(pieces - np.roll(pieces, 1, axis=1), axis=2)
    assert edges.max() <= 0.1 + 1e-12 and len(pieces) > 20
    normals = trimesh.triangles.normals(pieces)[0]
    parent = (pieces.mean(1)[:, 2] > 0.5).astype(int)  # the sliver lies in z = 0
    assert np.allclose(normals, trimesh.triangles.normals(tris)[0][parent])  # same orientation
    assert np.allclose(np.bincount(parent, trimesh.triangles.area(pieces)), trimesh.triangles.area(tris))


def test_sign_right_far_from_a_hole_and_in_overlapping_parts():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    holed = trimesh.Trimesh(sphere.vertices, sphere.faces[sphere.triangles_center[:, 1] < 0.3])
    assert not holed.is_watertight
    r = np.linalg.norm(POINTS, axis=1)
    far = (np.linalg.norm(POINTS - [0, 0.4, 0], axis=1) > 0.3) & (np.abs(r - 0.4) > 0.01)
    sdf = MeshSDF(holed).signed_distance(POINTS)
    assert np.array_equal(sdf[far] < 0, r[far] < 0.4)

    cross = trimesh.util.concatenate([trimesh.creation.box((0.6, 0.2, 0.2)), trimesh.creation.box((0.2, 0.6, 0.2))])
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
    assert a["counts"] == {"near": [300, 300], "sharp": 0, "uniform": 400}
    assert a["sharp"].shape == (0, 6)  # a smooth sphere has no sharp edge
    assert (np.einsum("ij,ij->i", a["surface"][:, :3], a["surface"][:, 3:]) > 0).all()
    near = a["sdf"][:300]
    assert np.abs(near[:, 3]).mean() < 0.01
    uniform = a["sdf"][600:, :3]
    assert np.abs(uniform).max() <= 0.55
    assert a["inside_fraction"] == pytest.approx(4 / 3 * np.pi * 0.125 / 1.1**3, abs=0.08)


def test_sharp_edge_samples_lie_on_the_edges_of_a_box():
    half = np.array([0.5, 0.3, 0.2])
    box = prepare(trimesh.creation.box(2 * half))
    a = sharp_edge_samples(box, 500, 15.0, np.random.default_rng(3))
    assert a.shape == (500, 6) and a.dtype == np.float32
    assert np.array_equal(a, sharp_edge_samples(box, 500, 15.0, np.random.default_rng(3)))
    on_face = np.isclose(np.abs(a[:, :3]), half, atol=1e-6)
    assert (on_face.sum(1) >= 2).all()  # on two faces at once: on an edge, not a face diagonal
    assert np.allclose(np.linalg.norm(a[:, 3:], axis=1), 1, atol=1e-6)
    assert (np.einsum("ij,ij->i", a[:, :3], a[:, 3:]) > 0).all()  # the mean normal points out
    # length-weighted: the share on the 4 edges along x is their share of the total length
    along_x = (~on_face[:, 0]).mean()
    assert along_x == pytest.approx(0.5 / (0.5 + 0.3 + 0.2), abs=0.07)
    sphere = prepare(trimesh.creation.icosphere(subdivisions=3, radius=0.5))
    assert sharp_edge_samples(sphere, 100, 15.0, np.random.default_rng(0)).shape == (0, 6)
    assert len(sharp_edge_samples(sphere, 100, 1.0, np.random.default_rng(0))) == 100  # all edges above 1 degree


def test_shape_samples_near_sharp_edges():
    half = np.array([0.5, 0.3, 0.2])
    box = trimesh.creation.box(2 * half)
    kw = dict(surface_points=200, sdf_points=1000, near_sigmas=(0.005, 0.05), uniform_fraction=0.4)
    a = shape_samples(box, seed=1, sharp_points=64, sharp_sdf_fraction=0.2, **kw)
    assert a["counts"] == {"near": [200, 200], "sharp": 200, "uniform": 400}
    assert a["sharp"].shape == (64, 6) and a["sdf"].shape == (1000, 4)
    rows = a["sdf"][400:600, :3]  # within a few sigmas of an edge: two coordinates near +-half
    assert (np.sort(np.abs(np.abs(rows) - half), axis=1)[:, 1] < 0.03).all()
