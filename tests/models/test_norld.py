import torch

from hi3dgen import config
from hi3dgen.models.norld import NoRLD, NoRLDConfig


def tiny(**kw) -> NoRLD:
    torch.manual_seed(0)
    model = config.preset("norld", "tiny")["model"]
    return NoRLD(config.from_dict(NoRLDConfig, {**model, "num_latents": 8, "latent_dim": 4, **kw}))


def test_velocity_starts_at_zero_and_has_the_latent_shape():
    model = tiny()
    x = torch.randn(3, 8, 4)
    v = model(x, torch.rand(3), torch.randn(3, 3, 32, 32))
    assert v.shape == x.shape and v.abs().max() == 0  # zero-initialized output layer


def test_dropped_conditions_are_the_null_condition():
    model = tiny()
    normal = torch.randn(2, 3, 48, 48)  # any size: resized to image_size
    cond = model.condition(normal, drop=torch.tensor([True, False]))
    assert torch.equal(cond[0], model.null_cond)
    assert not torch.equal(cond[1], model.null_cond)


def test_condition_changes_the_velocity_once_trained_a_little():
    model = tiny()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    x, t = torch.randn(2, 8, 4), torch.full((2,), 0.5)
    normals = torch.stack([torch.ones(3, 32, 32), -torch.ones(3, 32, 32)])
    target = torch.stack([torch.ones(8, 4), -torch.ones(8, 4)])
    for _ in range(30):
        loss = (model(x, t, normals) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss < 0.1


def test_sampling_with_and_without_guidance():
    model = tiny()
    model.latent_mean.fill_(2.0)
    normal = torch.randn(2, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    z = model.sample(normal, steps=3, guidance=3.0, generator=g)
    assert z.shape == (2, 8, 4)
    # an untrained model predicts velocity 0: the sample is the (denormalized) starting noise
    noise = torch.randn(2, 8, 4, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(z, noise + 2.0)
    assert model.sample(normal, steps=2, guidance=1.0).shape == (2, 8, 4)
