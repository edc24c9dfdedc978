"""checkpoint_config.py: a checkpoint folder's config.json -> a family's hyper-parameters, one torch-free mapping
that the model loader and the quick checks share."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from batchvoc.checkpoint_config import READERS, folder_hparams
from batchvoc.errors import ConfigError


def test_the_loader_reads_a_folder_config_json_through_the_shared_readers(tmp_path):
    """Every family the loader builds (models.FAMILIES, presets.FAMILIES) has a reader in READERS, and the loader's
    folder hyper-parameters are folder_hparams through that reader: the checks' mapping, so the two cannot drift
    apart."""
    from batchvoc.models import FAMILIES, _folder_hparams, presets

    assert set(READERS) == set(FAMILIES) == set(presets.FAMILIES)
    (tmp_path / "config.json").write_text(json.dumps({"num_mels": 100, "upsample_rates": [8, 8, 4, 2]}))
    preset = presets.get_preset("hifigan_v1_universal")
    expected = folder_hparams(preset.hparams, READERS["hifigan"], tmp_path)
    assert _folder_hparams(preset, tmp_path) == expected and expected["n_mels"] == 100
    preset = presets.get_preset("bigvgan_v2_24khz_100band_256x")
    with pytest.raises(ConfigError, match="BigVGAN config.json lacks resblock") as err:
        _folder_hparams(preset, tmp_path)
    assert err.value.key == "model.checkpoint"


def test_the_mapping_imports_no_torch():
    """The quick checks import it before torch: a fresh interpreter importing it and the checks has no torch."""
    script = "import sys, batchvoc.checkpoint_config, batchvoc.runner.checks; print('torch' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr


def test_a_folder_config_json_over_the_presets_hparams(tmp_path):
    """The keys a config.json holds replace the preset's (num_mels as n_mels); no config.json, or no reader,
    leaves the preset's; one that is no JSON object, or that BigVGAN's reader lacks keys in, is named."""
    base = {"n_mels": 80, "upsample_rates": [8, 8, 2, 2], "resblock": "1"}
    assert folder_hparams(base, READERS["hifigan"], tmp_path) == base
    (tmp_path / "config.json").write_text(json.dumps({"num_mels": 100, "upsample_rates": [8, 8, 4, 2], "lr": 2e-4}))
    assert folder_hparams(base, READERS["hifigan"], tmp_path) == {**base, "n_mels": 100, "upsample_rates": [8, 8, 4, 2]}
    assert folder_hparams(base, None, tmp_path) == base
    with pytest.raises(ConfigError, match="BigVGAN config.json lacks resblock, upsample_kernel_sizes") as err:
        folder_hparams(base, READERS["bigvgan"], tmp_path)
    assert err.value.key == "model.checkpoint"
    (tmp_path / "config.json").write_text("[80]")
    with pytest.raises(ConfigError, match=r"config.json'?: it holds a JSON list, not an object"):
        folder_hparams(base, READERS["hifigan"], tmp_path)
    (tmp_path / "config.json").write_text("{num_mels: 80")
    with pytest.raises(ConfigError, match="cannot read"):
        folder_hparams(base, READERS["hifigan"], tmp_path)
