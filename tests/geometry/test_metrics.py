import numpy as np
import trimesh

from hi3dgen.geometry.metrics import FSCORE_FRACTION, mesh_metrics, sample_surface, surface_metrics


def test_identical_meshes_score_perfectly():
    """100,000 points a side: a box against itself is within sampling noise of perfect (with the
    8,192 ground-truth points shape shards carry, F-score@1% would be 0.37 for a unit cube)."""
    for box in (trimesh.creation.box((1.0, 1.0, 1.0)), trimesh.creation.box((1.0, 0.6, 0.4))):
        m = mesh_metrics(box, box)
        assert m["chamfer"] < 0.005
        assert m["fscore"] > 0.99
        assert m["normal_consistency"] > 0.99  # points near edges pair with the neighbouring face


def test_known_offsets():
    """Points shifted by a known distance: Chamfer near it, F-score 1 above it and low below it,
    normal consistency orientation-free."""
    rng = np.random.default_rng(0)
    a = rng.uniform(-0.5, 0.5, (500, 3))
    a[:2] = [[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]]  # size 1: the F-score threshold is 0.01
    n = np.tile([0.0, 0.0, 1.0], (500, 1))
    near = surface_metrics(np.hstack([a + [0.005, 0, 0], -n]), np.hstack([a, n]))
    far = surface_metrics(np.hstack([a + [0.02, 0, 0], np.tile([1.0, 0, 0], (500, 1))]), np.hstack([a, n]))
    assert near["fscore"] == 1.0 and 0.004 < near["chamfer"] < 0.0051 and near["normal_consistency"] == 1.0
    assert far["fscore"] < 0.5 and 0.01 < far["chamfer"] < 0.0201 and far["normal_consistency"] == 0.0
    assert FSCORE_FRACTION == 0.01


def test_sphere_against_a_larger_sphere():
    small = trimesh.creation.icosphere(4, radius=0.4)
    big = trimesh.creation.icosphere(4, radius=0.45)
    m = mesh_metrics(small, big)
    assert 0.045 < m["chamfer"] < 0.055
    assert m["fscore"] < 0.05
    assert m["normal_consistency"] > 0.98
    assert sample_surface(big, 1000).shape == (1000, 6)


def test_missing_prediction_scores_worst():
    box = trimesh.creation.box((1.0, 1.0, 1.0))
    assert mesh_metrics(None, box) == {"chamfer": float("inf"), "fscore": 0.0, "normal_consistency": 0.0}
