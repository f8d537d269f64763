import numpy as np
import trimesh

from hi3dgen.geometry.metrics import chamfer, fscore, mesh_metrics, normal_consistency, sample_surface


def test_identical_surfaces_score_perfectly():
    box = trimesh.creation.box((1.0, 0.6, 0.4))
    gt = sample_surface(box, 20000, seed=1)
    m = mesh_metrics(box, gt, count=20000)
    assert m["chamfer"] < 0.01
    assert m["fscore"] > 0.85  # limited by the sampling density at a 1% threshold
    assert m["normal_consistency"] > 0.97  # points near edges pair with the neighbouring face


def test_known_offsets():
    a = np.random.default_rng(0).uniform(-0.5, 0.5, (500, 3))
    b = a + np.array([0.02, 0.0, 0.0])
    assert abs(chamfer(a, b) - 0.02) < 0.01  # a nearest neighbour can only be closer than the shift
    assert fscore(a, b, 0.01) < fscore(a, b, 0.03) == 1.0
    n = np.tile([0.0, 0.0, 1.0], (500, 1))
    assert normal_consistency(a, n, a, -n) == 1.0  # orientation-free
    assert normal_consistency(a, n, a, np.tile([1.0, 0.0, 0.0], (500, 1))) == 0.0


def test_sphere_against_a_larger_sphere():
    small = trimesh.creation.icosphere(4, radius=0.4)
    big = trimesh.creation.icosphere(4, radius=0.45)
    m = mesh_metrics(small, sample_surface(big, 5000))
    assert 0.045 < m["chamfer"] < 0.055
    assert m["fscore"] < 0.05
    assert m["normal_consistency"] > 0.98


def test_missing_prediction_scores_worst():
    assert mesh_metrics(None, np.zeros((3, 6)))["fscore"] == 0.0
