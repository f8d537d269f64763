import numpy as np
import torch
import trimesh

from hi3dgen.geometry.marching_cubes import edge_ends, topology
from hi3dgen.geometry.mesh_extract import ExtractConfig, edge_vertices, extract, grid_points

R, BOUND = 32, 0.55
HALF = torch.tensor([0.3, 0.2, 0.25])


def sphere(x):
    return x.norm(dim=-1) - 0.3


def box(x):
    q = x.abs() - HALF
    return q.clamp(min=0).norm(dim=-1) + q.max(-1).values.clamp(max=0)


def meshes(fns, max_faces=20000, max_vertices=12000):
    pts = grid_points(R, BOUND)
    top = topology(torch.stack([fn(pts) for fn in fns]), max_faces, max_vertices)
    pa, pb = edge_ends(top.edges, R, BOUND)
    fa = torch.stack([fn(p) for fn, p in zip(fns, pa)])
    fb = torch.stack([fn(p) for fn, p in zip(fns, pb)])
    return top, edge_vertices(pa, pb, fa, fb)


def test_sphere_and_box_are_closed_outward_and_match_their_area_and_volume():
    top, vertices = meshes([sphere, box])
    assert not top.overflow.any()
    # (volume, area, tolerances): the box's SDF bends inside along its medial planes, so vertices
    # interpolated on edges crossing them miss by up to ~0.14 cell, and its edges come out bevelled
    expected = [(4 / 3 * np.pi * 0.3**3, 4 * np.pi * 0.09, 2e-3, 0.01, 0.01), (0.12, 1.48, 6e-3, 0.02, 0.06)]
    for i, (fn, (volume, area, on, tol_v, tol_a)) in enumerate(zip((sphere, box), expected)):
        n, v = int(top.face_count[i]), int(top.vertex_count[i])
        assert (top.faces[i, n:] == 0).all()  # unused slots are degenerate
        assert fn(vertices[i, :v]).abs().max() < on  # on the zero set
        mesh = trimesh.Trimesh(vertices[i, :v].numpy(), top.faces[i, :n].numpy(), process=False)
        assert trimesh.Trimesh(mesh.vertices, mesh.faces).is_watertight
        assert abs(mesh.volume - volume) < tol_v * volume  # positive: outward winding
        assert abs(mesh.area - area) < tol_a * area


def test_same_surface_as_scikit_image_marching_cubes():
    top, vertices = meshes([sphere])
    ref = extract(sphere, ExtractConfig(resolution=R, bound=BOUND))
    n, v = int(top.face_count[0]), int(top.vertex_count[0])
    assert (n, v) == (len(ref.faces), len(ref.vertices))
    ours = np.sort(vertices[0, :v].numpy().round(5), axis=0)
    assert np.abs(ours - np.sort(ref.vertices.detach().numpy().round(5), axis=0)).max() < 1e-5


def test_budget_overflow_is_counted_and_kept_faces_stay_valid():
    top, vertices = meshes([sphere, lambda x: x.norm(dim=-1) + 1.0], max_faces=500, max_vertices=400)
    assert top.overflow.tolist() == [True, False]
    assert top.face_count[0] > 500 and top.face_count[1] == 0 and top.vertex_count[1] == 0
    faces = top.faces[0]
    assert (faces < 400).all() and (faces[:, 0] != faces[:, 1]).sum() > 300  # real faces fill the budget
    assert (top.faces[1] == 0).all()  # no surface: nothing but degenerate faces


def test_vertex_gradients_agree_with_finite_differences():
    c = torch.tensor([0.03, -0.02, 0.01, 0.28], dtype=torch.float64, requires_grad=True)

    def loss_of(latent):
        def fn(x):
            return (x.double() - latent[:3]).norm(dim=-1) - latent[3]

        top = topology(fn(grid_points(24, BOUND))[None], 4000, 3000)
        pa, pb = (p.double() for p in edge_ends(top.edges, 24, BOUND))
        v = edge_vertices(pa, pb, fn(pa), fn(pb))[0, : int(top.vertex_count[0])]
        return (v @ torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64)).mean() + v.norm(dim=1).pow(2).mean()

    loss_of(c).backward()
    h = 1e-5
    for i in range(4):
        e = torch.zeros(4, dtype=torch.float64)
        e[i] = h
        with torch.no_grad():
            fd = (loss_of(c + e) - loss_of(c - e)) / (2 * h)
        assert abs(fd.item() - c.grad[i].item()) < 1e-4 * max(1.0, abs(fd.item()))


def test_trimmed_keeps_the_surface_and_the_overflow():
    top, _ = meshes([sphere, box], max_faces=2400, max_vertices=2000)  # 2588 and 2332 faces
    small = top.trimmed()
    assert small.faces.shape[1] == 2400  # the sphere overflows: every face slot is used
    assert small.edges.shape[1] == 1296  # the sphere's vertices: the larger count
    assert torch.equal(small.overflow, top.overflow) and top.overflow.tolist() == [True, False]
    roomy, _ = meshes([sphere], max_faces=20000, max_vertices=12000)
    cut = roomy.trimmed()
    assert cut.faces.shape[1] == int(roomy.face_count[0]) and cut.edges.shape[1] == int(roomy.vertex_count[0])
    assert torch.equal(cut.faces, roomy.faces[:, : cut.faces.shape[1]]) and not cut.overflow.any()
