import numpy as np
import torch

from hi3dgen.geometry.mesh_extract import ExtractConfig, extract, sdf_grid


def sphere(centre, radius):
    return lambda x: (x - centre).norm(dim=-1) - radius


def test_sphere_vertices_lie_on_the_surface_and_face_outward():
    r = 0.3
    mesh = extract(sphere(torch.zeros(3), r), ExtractConfig(resolution=32))
    radii = mesh.vertices.norm(dim=1)
    assert (radii - r).abs().max() < 0.01
    assert mesh.to_trimesh().volume > 0  # outward winding
    assert abs(mesh.to_trimesh().volume - 4 / 3 * np.pi * r**3) < 0.01


def test_hierarchical_grid_keeps_signs_and_exact_values_near_the_surface():
    fn = sphere(torch.tensor([0.05, -0.02, 0.0]), 0.27)
    dense = sdf_grid(fn, ExtractConfig(resolution=33))
    fine = sdf_grid(fn, ExtractConfig(resolution=33, coarse=9))
    assert torch.equal(dense < 0, fine < 0)
    near = dense.abs() < 0.05
    assert torch.allclose(dense[near], fine[near])


def test_box_is_empty_outside_the_grid():
    assert extract(lambda x: x.norm(dim=-1) + 1.0, ExtractConfig(resolution=8)) is None


def test_gradients_reach_the_latent_and_agree_with_finite_differences():
    # a "latent" z moves the centre and sets the radius of an SDF; the loss is a function of the mesh
    z = torch.tensor([0.03, -0.02, 0.01, 0.28], dtype=torch.float64, requires_grad=True)
    cfg = ExtractConfig(resolution=24)

    def loss_of(latent):
        def fn(x):
            return (x.double() - latent[:3]).norm(dim=-1) - latent[3]

        mesh = extract(fn, cfg)
        w = torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64)
        return (mesh.vertices @ w).mean() + mesh.vertices.norm(dim=1).pow(2).mean(), len(mesh.faces)

    loss, faces = loss_of(z)
    loss.backward()
    assert z.grad.abs().min() > 0
    h = 1e-5
    for i in range(4):
        e = torch.zeros(4, dtype=torch.float64)
        e[i] = h
        with torch.no_grad():
            (lp, fp), (lm, fm) = loss_of(z + e), loss_of(z - e)
        assert fp == fm == faces  # same topology on both sides
        fd = (lp - lm) / (2 * h)
        assert abs(fd.item() - z.grad[i].item()) < 1e-4 * max(1.0, abs(fd.item()))
