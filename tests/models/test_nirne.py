import pytest
import torch

from hi3dgen.models.nirne import NiRNE, NiRNEConfig, NoiseConfig

TINY = dict(width=8, mults=(1, 2), blocks=1, patch=1, emb_dim=16, head_ch=4)


def model(**kw) -> NiRNE:
    torch.manual_seed(0)
    return NiRNE(NiRNEConfig(**{**TINY, **kw})).eval()


def test_state_dict_prefixes_and_single_stream():
    keys = model().state_dict().keys()
    assert any(k.startswith("clean_stream.") for k in keys)
    assert any(k.startswith("noisy_stream.") for k in keys)
    assert {k.split(".")[0] for k in keys} == {"clean_stream", "noisy_stream", "fusion", "decoder"}
    single = model(dual_stream=False).state_dict().keys()
    assert not any(k.startswith(("clean_stream.", "fusion.")) for k in single)


def test_outputs_unit_normals_and_fusion_starts_as_noop():
    m = model()
    x = torch.rand(2, 3, 16, 16)
    out = m(x)
    assert out.shape == (2, 3, 16, 16)
    assert torch.allclose(out.norm(dim=1), torch.ones(2, 16, 16), atol=1e-5)
    with torch.no_grad():  # zero-initialized projections: the clean stream cannot change the output yet
        for p in m.clean_stream.parameters():
            p.add_(torch.randn_like(p))
    assert torch.equal(m(x), out)


def test_noise_injected_only_when_asked():
    m = model()
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(m.predict(x), m.predict(x))  # inference: no noise, deterministic
    t, eps = m.sample_noise(x)
    assert t.shape == (2,) and eps.shape == x.shape and (t <= 0.75).all()
    assert not torch.allclose(m(x, t, eps), m(x))
    g = torch.Generator().manual_seed(1)
    noisy = m.predict(x, noise_level=0.5, generator=g)
    assert not torch.allclose(noisy, m.predict(x))
    off = model(noise=NoiseConfig(enabled=False))
    t, eps = off.sample_noise(x)
    assert eps is None and (t == 0).all()


def test_noise_schedules():
    x, eps = torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    for schedule in ("cosine", "linear"):
        cfg = NoiseConfig(schedule=schedule)
        assert torch.allclose(cfg.inject(x, torch.zeros(1), eps), x)
        assert torch.allclose(cfg.inject(x, torch.ones(1), eps), torch.zeros_like(x), atol=1e-6)
    with pytest.raises(ValueError, match="schedule"):
        NoiseConfig(schedule="sigmoid")


def test_predict_any_size_pads_to_stride():
    m = model(mults=(1, 2, 2), patch=2)
    assert m.cfg.stride == 8
    for h, w in ((17, 30), (8, 8), (5, 41), (1, 1)):
        assert m.predict(torch.rand(1, 3, h, w)).shape == (1, 3, h, w)


def test_stream_init_from_local_weights(tmp_path):
    src = model()
    torch.save({"model": src.state_dict()}, tmp_path / "ckpt.pt")
    torch.save(src.noisy_stream.state_dict(), tmp_path / "noisy.pt")
    torch.manual_seed(1)
    dst = NiRNE(NiRNEConfig(**TINY, clean_init=str(tmp_path / "ckpt.pt"), noisy_init=str(tmp_path / "noisy.pt")))
    for name in ("clean_stream", "noisy_stream"):
        a, b = getattr(src, name).state_dict(), getattr(dst, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    torch.save({"other.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="does not fit the stream"):
        NiRNE(NiRNEConfig(**TINY, clean_init=str(tmp_path / "bad.pt")))


def test_frozen_clean_stream_stays_in_eval_mode():
    m = model()
    m.freeze_clean_stream()
    m.train()
    assert not m.clean_stream.training and m.noisy_stream.training
    assert not any(p.requires_grad for p in m.clean_stream.parameters())
    with pytest.raises(ValueError, match="no clean stream"):
        model(dual_stream=False).freeze_clean_stream()
