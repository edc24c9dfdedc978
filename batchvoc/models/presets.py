"""Named vocoder presets: architecture hyper-parameters, audio rates and the matching mel front end.

The presets are data: one YAML file each under batchvoc/conf/preset/ (packaged with the code), read here when the
module is imported (the `from_hparams` pattern: the family's module builds the model from `hparams`). A new vocoder
of a known family is one YAML file; a new family is that plus one module in batchvoc/models/.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from batchvoc.errors import ConfigError


@dataclass(frozen=True)
class MelFrontEnd:
    """How the model's training mels were made: log(clamp(mel_basis @ |STFT|, clip)).

    The STFT runs with center=False on audio reflect-padded by (n_fft - hop) / 2 on each side,
    so a clip of N samples gives N // hop frames.
    """

    sample_rate: int
    n_fft: int
    hop_length: int
    win_length: int
    n_mels: int
    fmin: float = 0.0
    fmax: float | None = None
    clip: float = 1e-5
    magnitude_eps: float = 1e-9


@dataclass(frozen=True)
class Preset:
    """A vocoder the tool knows: which family builds it, with what hyper-parameters, at what rates."""

    name: str
    family: str  # "hifigan" | "bigvgan": the module in batchvoc.models that builds it
    hparams: dict[str, Any]
    sample_rate: int  # output audio rate
    hop_length: int  # output samples per mel frame
    n_mels: int
    front_end: MelFrontEnd
    weights_hint: str = ""  # where upstream publishes the checkpoint
    notes: str = field(default="", compare=False)

    @property
    def silence(self) -> float:
        """Log-mel value of silence: what padding frames hold."""
        return math.log(self.front_end.clip)

    @property
    def frame_rate(self) -> float:
        """Mel frames per second of audio: sample_rate / hop_length (gsv_v4: 100)."""
        return self.sample_rate / self.hop_length


PRESETS: dict[str, Preset] = {}
PRESET_FOLDER = "preset"  # under the packaged config tree, batchvoc/conf/
FAMILIES = ("hifigan", "bigvgan")


def register(preset: Preset) -> Preset:
    """Make `preset` known by its name (the YAML files are registered this way; code may add more)."""
    PRESETS[preset.name] = preset
    return preset


def preset_from_yaml(name: str, text: str) -> Preset:
    """A Preset from one YAML file's text. Raises ConfigError naming the file's key that is missing or wrong."""
    import yaml

    where = f"{PRESET_FOLDER}/{name}.yaml"
    data = yaml.safe_load(text) or {}
    try:
        front_end = MelFrontEnd(**data.pop("front_end"))
        preset = Preset(name=name, front_end=front_end, **data)
    except (KeyError, TypeError) as err:
        raise ConfigError(f"model.preset={name}", f"{where}: {err}") from None
    if preset.family not in FAMILIES:
        raise ConfigError(f"model.preset={name}", f"{where}: family {preset.family!r} is not one of {FAMILIES}")
    hop = math.prod(preset.hparams.get("upsample_rates", [preset.hop_length]))
    if hop != preset.hop_length or preset.hparams.get("n_mels", preset.n_mels) != preset.n_mels:
        raise ConfigError(f"model.preset={name}", f"{where}: hop_length/n_mels disagree with hparams")
    return preset


def load_presets() -> None:
    """Register every preset YAML of the packaged config tree."""
    from importlib import resources

    folder = resources.files("batchvoc.conf") / PRESET_FOLDER
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            register(preset_from_yaml(entry.name[: -len(".yaml")], entry.read_text()))


def get_preset(name: str) -> Preset:
    """The preset called `name`, or a ConfigError on model.preset listing the known ones."""
    if name not in PRESETS:
        known = ", ".join(sorted(PRESETS))
        raise ConfigError("model.preset", f"unknown preset {name!r}; known presets: {known}")
    return PRESETS[name]


load_presets()
