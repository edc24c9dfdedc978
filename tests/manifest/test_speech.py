"""The real-speech fixture: espeak-ng speaks to WAV in a folder of the session's own; without espeak-ng, the
tests that need it skip cleanly (and the others run)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from batchvoc.models.presets import get_preset
from tests.speech import SENTENCES, speech_mels

REPO = Path(__file__).resolve().parents[2]


def test_speech_is_spoken_sentences_at_22khz(speech, tmp_path_factory):
    assert len(speech.wavs) == len(SENTENCES) and speech.texts == SENTENCES
    assert all(wav.parent == speech.wavs[0].parent for wav in speech.wavs)
    assert str(tmp_path_factory.getbasetemp()) in str(speech.wavs[0])
    for wav in speech.wavs:
        audio, rate = sf.read(wav, dtype="float32")
        assert rate == 22050 and 1.5 < audio.shape[0] / rate < 8 and 0.2 < np.abs(audio).max() <= 1.0
    mels = speech_mels(speech, get_preset("gsv_v4"))
    assert all(m.shape[0] == 100 and m.min() >= np.log(1e-5) - 1e-4 and m.max() > -2 for m in mels)


def test_without_espeak_ng_the_speech_tests_skip_and_the_rest_run(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))  # no espeak-ng on PATH
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", f"--basetemp={tmp_path / 'bt'}",
         "tests/manifest/test_speech.py::test_speech_is_spoken_sentences_at_22khz",
         "tests/manifest/test_conventions.py::test_unknown_scale_or_mode_names_the_key"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:]
    assert "1 passed, 1 skipped" in run.stdout and "espeak-ng is not installed" in run.stdout
