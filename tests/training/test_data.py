import numpy as np

from hi3dgen.data import toy
from hi3dgen.data.views import AugmentConfig, ListStream, ViewBatches, prepare_view


def test_flip_mirrors_normals_and_crops_keep_unit_normals():
    s = toy.toy_samples(1, 32, "synthetic")[0]
    still = AugmentConfig(
        resolution=32,
        crop_scale=(1, 1),
        crop_ratio=(1, 1),
        brightness=0,
        contrast=0,
        saturation=0,
        gamma=(1, 1),
        noise_std=0,
        blur_prob=0,
    )
    outs = [prepare_view(s, still, np.random.default_rng(i)) for i in range(8)]
    flipped = [o for o in outs if not np.array_equal(o["mask"], s["mask"])]
    kept = [o for o in outs if np.array_equal(o["mask"], s["mask"])]
    assert flipped and kept
    f = flipped[0]
    assert np.array_equal(f["mask"], s["mask"][:, ::-1])
    assert np.allclose(f["normal"], s["normal"][:, :, ::-1] * np.array([-1, 1, 1])[:, None, None], atol=1e-6)
    assert np.allclose(kept[0]["image"], s["image"], atol=1e-6)
    crop = prepare_view(s, AugmentConfig(resolution=20), np.random.default_rng(0))
    assert crop["image"].shape == (3, 20, 20) and crop["mask"].any()
    norm = np.linalg.norm(crop["normal"], axis=0)
    assert np.allclose(norm[crop["mask"]], 1, atol=1e-5) and (norm[~crop["mask"]] == 0).all()


def test_batches_resume_at_their_position():
    samples = toy.toy_samples(10, 16, "real")

    def make():
        return ViewBatches(lambda start: ListStream(samples, 0, start, 3), 3, AugmentConfig(resolution=8), seed=0)

    a = make()
    ref = [next(a) for _ in range(7)]  # crosses two epochs
    b = make()
    [next(b) for _ in range(4)]
    c = make()
    c.load_state_dict(b.state_dict())
    for want in ref[4:]:
        got = next(c)
        assert all(np.array_equal(got[k], want[k]) for k in want)
    assert c.state_dict() == {"consumed": 21}
