"""NiRNE's sd backbone on a tiny diffusers checkpoint with random weights, saved in diffusers format."""

import json

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from hi3dgen.models.backbones import build_nirne
from hi3dgen.models.nirne import NiRNEConfig, SDBackboneConfig
from hi3dgen.models.nirne_sd import NiRNESD, backbone_parts, sd_alpha_bar

HINT = (8, 16)  # the ControlNet's hint encoder: one level per 2x of the tiny VAE


def save_tiny_backbone(root, in_channels: int = 4):
    """An SD-2-like layout (unet/, vae/) at toy size: a 2-level U-Net with cross-attention, a 2x VAE."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=in_channels,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=4,
        norm_num_groups=8,
        use_linear_projection=True,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
    )
    unet.save_pretrained(root / "unet")
    vae.save_pretrained(root / "vae")
    return root


def sd_config(root, **kw) -> NiRNEConfig:
    return NiRNEConfig(backbone="sd", sd=SDBackboneConfig(backbone_from=str(root), hint_channels=HINT), **kw)


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    return save_tiny_backbone(tmp_path_factory.mktemp("sd"))


def test_streams_start_from_the_pretrained_unet(backbone):
    m = build_nirne(sd_config(backbone)).eval()
    assert isinstance(m, NiRNESD)
    keys = m.state_dict().keys()
    assert {k.split(".")[0] for k in keys} == {"clean_stream", "noisy_stream", "fusion", "vae"}
    unet = UNet2DConditionModel.from_pretrained(backbone / "unet").state_dict()
    noisy = m.noisy_stream.state_dict()
    assert all(torch.equal(unet[k], noisy[k]) for k in unet)
    clean = m.clean_stream.state_dict()  # ControlNet's copy of the U-Net's encoder
    assert all(torch.equal(unet[k], clean[k]) for k in clean if k.startswith(("down_blocks.", "mid_block.")))
    assert not any(p.requires_grad for p in m.vae.parameters())
    # zero-initialized fusion: the clean stream cannot change the output yet
    x = torch.rand(2, 3, 16, 16)
    out = m(x)
    assert out.shape == (2, 3, 16, 16) and torch.allclose(out.norm(dim=1), torch.ones(2, 16, 16), atol=1e-5)
    with torch.no_grad():
        for p in m.clean_stream.parameters():
            p.add_(torch.randn_like(p))
    assert torch.equal(m(x), out)


def test_noise_goes_into_the_latent_at_the_matching_step(backbone):
    m = build_nirne(sd_config(backbone)).eval()
    x = torch.rand(2, 3, 16, 16)
    t, eps = m.sample_noise(x)
    assert eps.shape == (2, 4, 8, 8) and (t <= 0.75).all()
    assert not torch.allclose(m(x, t, eps), m(x))
    step = m.diffusion_step(torch.tensor([0.0, 0.5, 1.0]))
    assert step[0] == 0 and 0 < step[1] < 999 and step[2] == 999
    assert sd_alpha_bar()[step[1]] <= 0.5 < sd_alpha_bar()[step[1] - 1]  # cos^2(pi/4) = 0.5
    assert torch.equal(m.predict(x), m.predict(x))
    for h, w in ((17, 30), (1, 1)):
        assert m.predict(torch.rand(1, 3, h, w)).shape == (1, 3, h, w)


def test_rebuilds_from_its_config_and_a_controlnet_dir(backbone, tmp_path):
    m = build_nirne(sd_config(backbone)).eval()
    cfg = m.cfg.architecture()
    assert cfg.sd.backbone_from is None and cfg.sd.unet["block_out_channels"] == [16, 32]
    again = build_nirne(cfg)
    again.load_state_dict(m.state_dict())
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(again.eval()(x), m(x))
    # NiRNE's released layout: DIR/controlnet/ starts the clean stream
    with torch.no_grad():
        for p in m.clean_stream.parameters():
            p.add_(1.0)
    controlnet = m.clean_stream
    controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block = m.fusion[:-1], m.fusion[-1]
    root = tmp_path / "with_controlnet"
    for part in ("unet", "vae"):
        (root / part).mkdir(parents=True)
        for f in (backbone / part).iterdir():
            (root / part / f.name).symlink_to(f)
    controlnet.save_pretrained(root / "controlnet")
    loaded = build_nirne(sd_config(root))
    ref = m.clean_stream.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in loaded.clean_stream.state_dict().items())


def test_stablenormal_unet_takes_the_image_latent_beside_its_own(tmp_path):
    m = build_nirne(sd_config(save_tiny_backbone(tmp_path, in_channels=8)))
    assert m(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8, 8)


def test_not_a_diffusers_dir_is_a_clear_error(backbone, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        backbone_parts(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"missing unet/config.json, unet/diffusion_pytorch_model.safetensors, vae/"):
        backbone_parts(tmp_path)
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet/config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    (tmp_path / "unet/diffusion_pytorch_model.fp16.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match=r"unet/config.json of a UNet2DConditionModel \(it names 'UNet2DModel'\)"):
        backbone_parts(tmp_path)
    with pytest.raises(ValueError, match="give --backbone-from DIR"):
        build_nirne(NiRNEConfig(backbone="sd"))
    with pytest.raises(ValueError, match="needs the sd backbone"):
        NiRNEConfig(sd=SDBackboneConfig(backbone_from=str(backbone)))
    with pytest.raises(ValueError, match="hint encoder downsamples 8x, the VAE 2x"):
        build_nirne(NiRNEConfig(backbone="sd", sd=SDBackboneConfig(backbone_from=str(backbone))))
