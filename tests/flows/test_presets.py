import pytest
import yaml

from flows import params, project
from hi3dgen.config import build
from hi3dgen.training.nirne import NiRNERunConfig
from hi3dgen.training.norld import NoRLDRunConfig
from hi3dgen.training.vae import VAERunConfig

RUN_CONFIGS = {"nirne": NiRNERunConfig, "vae": VAERunConfig, "norld": NoRLDRunConfig}


@pytest.mark.parametrize("name", params.preset_names())
def test_every_pipeline_preset_names_keys_of_params_and_model_presets_that_build(name):
    """A pipeline preset only sets keys params.yaml has, and the model presets it names build
    with its overrides (a typo would otherwise surface minutes into `hi3dgen run --preset`)."""
    root = project.root()
    current = yaml.safe_load((root / "params.yaml").read_text())
    overlay = yaml.safe_load((root / "presets" / f"{name}.yaml").read_text())
    for section, values in overlay.items():
        assert section in current, section
        assert set(values) <= set(current[section]), (section, set(values) - set(current[section]))
    for section, cls in RUN_CONFIGS.items():
        spec = {**current[section], **overlay.get(section, {})}
        cfg = build(cls, spec["preset"], spec["overrides"])
        assert cfg.preset == spec["preset"]
