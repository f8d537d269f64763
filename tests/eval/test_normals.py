import numpy as np
import pytest

from hi3dgen.eval.normals import NormalMetrics, NormalMetricsConfig, angular_error_deg, eroded_mask, sharp_mask


def sphere(res=64):
    y, x = (np.mgrid[0:res, 0:res] + 0.5) / res * 2 - 1
    mask = x**2 + y**2 < 0.8
    n = np.stack([x, -y, np.sqrt(np.clip(1 - x**2 - y**2, 0, 1))])
    return n / np.linalg.norm(n, axis=0), mask


def tilt(n, deg):
    """Rotate every normal by `deg` about an axis perpendicular to it."""
    a = np.cross(n, np.array([1.0, 0, 0])[:, None, None], axis=0)
    a /= np.linalg.norm(a, axis=0)
    t = np.radians(deg)
    return n * np.cos(t) + np.cross(a, n, axis=0) * np.sin(t)


def cube_edge(res=64):
    """Two faces of a cube meeting in a vertical crease at the centre column."""
    n = np.zeros((3, res, res))
    s = np.sqrt(0.5)
    n[:, :, : res // 2] = np.array([-s, 0, s])[:, None, None]
    n[:, :, res // 2 :] = np.array([s, 0, s])[:, None, None]
    mask = np.zeros((res, res), bool)
    mask[8:-8, 8:-8] = True
    return n, mask


def test_perfect_prediction_is_zero():
    n, mask = sphere()
    m = NormalMetrics()
    m.add(n, n, mask)
    r = m.result()
    assert r["NE"] == pytest.approx(0, abs=1e-3) and r["median"] == pytest.approx(0, abs=0.01)
    assert r["pct_11.25"] == r["pct_30"] == 100.0 and r["images"] == 1


def test_known_rotation_gives_known_angle():
    n, mask = sphere()
    assert np.allclose(angular_error_deg(tilt(n, 20), n), 20, atol=1e-4)
    m = NormalMetrics()
    m.add(tilt(n, 20), n, mask)
    r = m.result()
    assert r["NE"] == pytest.approx(20, abs=1e-3) and r["median"] == pytest.approx(20, abs=0.01)
    assert r["pct_11.25"] == 0 and r["pct_22.5"] == 100


def test_sharp_region_is_the_cube_edge():
    n, mask = cube_edge()
    cfg = NormalMetricsConfig()
    sharp = sharp_mask(n, mask, cfg)
    cols = np.nonzero(sharp.any(0))[0]
    assert sharp.any() and abs(cols.mean() - 31.5) < 1 and cols.max() - cols.min() <= 2 * cfg.sharp_dilate_px + 2
    inner = eroded_mask(mask, cfg.erode_px)
    assert not (sharp & ~inner).any()  # the silhouette never counts as sharp
    rows = np.nonzero(sharp.any(1))[0]
    assert rows.min() == np.nonzero(inner.any(1))[0].min()  # the whole crease, end to end
    pred = n.copy()  # a smooth prediction that is wrong only across the crease
    pred[:, :, 30:34] = np.array([0, 0, 1.0])[:, None, None]
    m = NormalMetrics(cfg)
    m.add(pred, n, mask)
    r = m.result()
    assert r["SNE"] > 3 * r["NE"] > 0
    smooth = NormalMetrics(cfg)
    smooth.add(*sphere()[:1] * 2, sphere()[1])
    assert smooth.result()["sharp_pixels"] == 0 and np.isnan(smooth.result()["SNE"])
