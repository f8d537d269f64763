"""`clean` gives what trimesh's own `process(validate=True)` gives, to the bit, on the meshes that
exercise each of its steps."""

import numpy as np
import pytest
import trimesh

from hi3dgen.assets import mesh as am


def _reference_clean(mesh):
    out = trimesh.Trimesh(vertices=np.asarray(mesh.vertices, np.float64), faces=mesh.faces, process=True, validate=True)
    out.merge_vertices(merge_tex=True, merge_norm=True)
    return out


def _meshes():
    box, ico = trimesh.creation.box(), trimesh.creation.icosphere(3)
    mixed = ico.faces.copy()
    mixed[::3] = mixed[::3, ::-1]
    n = len(ico.vertices)
    doubled = np.r_[ico.vertices, ico.vertices[:5]]  # duplicate vertices, faces on them
    messy = np.r_[ico.faces, ico.faces[:7], [[0, 0, 1], [1, 2, 2]], [[n + k, 1, 2] for k in range(5)]]
    return {
        "box": box,
        "inverted": trimesh.Trimesh(box.vertices, box.faces[:, ::-1], process=False),
        "open": trimesh.Trimesh(box.vertices, box.faces[:-2], process=False),
        "mixed_winding": trimesh.Trimesh(ico.vertices, mixed, process=False),
        "duplicates_and_degenerates": trimesh.Trimesh(doubled, messy, process=False),
        "two_bodies_one_inverted": trimesh.util.concatenate(
            [trimesh.Trimesh(box.vertices, box.faces[:, ::-1]), trimesh.Trimesh(ico.vertices + 3, ico.faces)]
        ),
        "torus": trimesh.creation.torus(0.35, 0.12, major_sections=64, minor_sections=32),
    }


@pytest.mark.parametrize("name", list(_meshes()))
def test_clean_is_trimesh_process_validate(name):
    mesh = _meshes()[name]
    got, want = am.clean(mesh), _reference_clean(mesh)
    assert np.array_equal(got.vertices, want.vertices) and np.array_equal(got.faces, want.faces)
    assert np.array_equal(got.face_normals, want.face_normals)
    assert got.is_watertight == want.is_watertight and got.volume == pytest.approx(want.volume)
    if name == "inverted":
        assert got.volume > 0  # turned outward
