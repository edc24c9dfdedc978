"""batchvoc.Vocoder and the Ray Data class: real pretrained weights, real jobs and a real local Ray."""

import logging

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch

import batchvoc
from batchvoc.chunking import ChunkPlan
from batchvoc.demo import synthesise
from batchvoc.engines import Engine
from batchvoc.errors import API_KEYS, ConfigError
from batchvoc.manifest.conventions import MelChecks
from batchvoc.models.mel import log_mel
from batchvoc.models.presets import get_preset
from batchvoc.runner.driver import run_job
from batchvoc.settings import JobSettings
from batchvoc.stream import vocode_audio
from tests.conftest import write_manifest
from tests.speech import predicted_words

FE = get_preset("hifigan_v1_universal").front_end


def speech_mels(seconds=(0.9, 0.5), seed=3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [log_mel(synthesise(s, FE.sample_rate, rng), FE).numpy() for s in seconds]


@pytest.fixture(scope="module")
def pretrained():
    return batchvoc.Vocoder.from_preset("hifigan_v1_universal", checkpoint="pretrained", backend="eager",
                                        batch=3, window=96)  # fmt: skip


def test_vocoder_equals_the_jobs_float_audio(tmp_path, pretrained, ray_cluster):
    mels = speech_mels()
    rows = [dict(id=f"utt{i}", mel=m.ravel(), n_frames=m.shape[1], n_mels=80) for i, m in enumerate(mels)]
    write_manifest(tmp_path / "in" / "m.parquet", rows)
    settings = JobSettings(manifest=str(tmp_path / "in"), out_dir=str(tmp_path / "out"),
                           preset="hifigan_v1_universal", checkpoint="pretrained", backend="eager",
                           precision="fp32", batch=2, window=128, subtype="FLOAT", cpu_actors=1)  # fmt: skip
    assert run_job(settings).exit_code == 0
    table = pq.read_table(next((settings.out_path / "manifest").glob("*.parquet"))).to_pylist()
    job_audio = {r["id"]: sf.read(settings.out_path / r["path"], dtype="float32")[0] for r in table}

    # numpy and torch inputs, any float dtype; packed differently from the job (batch 3, window 96)
    ours = pretrained([mels[0], torch.from_numpy(mels[1]).double()])
    assert pretrained.sample_rate == 22050 and pretrained.hop_length == 256 and pretrained.n_mels == 80
    for mel, audio, key in zip(mels, ours, ("utt0", "utt1"), strict=True):
        assert audio.dtype == np.float32 and audio.shape == (mel.shape[1] * 256,)
        assert np.abs(audio).max() < 1.0  # the job clips at full scale; these stay below it
        np.testing.assert_allclose(audio, job_audio[key], atol=1e-4, rtol=0)
        assert np.abs(audio).max() > 0.05  # real speech-like audio, not silence


def test_bad_mels_are_named_by_index(pretrained):
    good = speech_mels((0.3,))[0]
    cases = [(good.T, "axis 0"), (good[:, :0], "0 frames"), (np.where(good > -3, np.nan, good), "NaN"),
             (np.stack([good, good]), "shape"), (np.array(["a", "b"]), "holds <U1, not float values")]  # fmt: skip
    for bad, words in cases:
        with pytest.raises(ValueError, match=f"mel #1: .*{words}"):
            pretrained([good, bad])
    results = pretrained.vocode_each([good, good.T, None, good[:, :7]])
    assert [r.ok for r in results] == [True, False, False, True]
    assert "transpose" in results[1].error and results[2].error == "mel is null"
    assert results[3].audio.shape == (7 * 256,)
    np.testing.assert_allclose(results[0].audio, pretrained([good])[0], atol=1e-5)
    assert pretrained([]) == []


def test_one_mel_given_bare_is_refused_as_such_and_a_batch_is_its_mels(pretrained):
    """vocos and BigVGAN take [B, n_mels, T]: such a batch is its B mels (a generator or tuple works too); one mel
    given bare (a 2-D array or tensor, or nested lists) would read as 80 mels of one row each, so it is refused as
    one mel, and a file name as a file name."""
    mel = speech_mels((0.4,))[0]
    one = pretrained([mel])[0]
    for batch in (np.stack([mel, mel]), torch.from_numpy(np.stack([mel, mel])), (m for m in (mel, mel)), (mel, mel)):
        audio = pretrained(batch)
        assert len(audio) == 2 and all(np.allclose(a, one, atol=1e-5, rtol=0) for a in audio)  # packed otherwise
    assert [r.ok for r in pretrained.vocode_each(m for m in (mel, mel[:3]))] == [True, False]
    for bare in (mel, torch.from_numpy(mel), mel.tolist()):
        for call in (pretrained, pretrained.vocode_each):
            with pytest.raises(ValueError, match=r"one mel .*given bare; pass a list of mels, vocoder\(\[mel\]\)"):
                call(bare)
    assert pretrained([mel.tolist()])[0].shape == one.shape  # a list of one mel as nested lists is fine
    with pytest.raises(ValueError, match=r"mels has shape \[1, 1, 80, \d+\]"):
        pretrained(mel[None, None])
    with pytest.raises(TypeError, match="file name"):
        pretrained("utt1.npy")


def test_file_names_and_other_non_arrays_in_a_list_are_named_as_what_they_are(pretrained, tmp_path):
    """vocoder(["x.npy"]) said `mel #0: mel holds <U5, not float values` (a Path: `holds object`): the item is a
    file name, and the reason says so and how to pass it; a dict or a number is named by its type. The same
    reasons reach vocode_each's Results, a stream's chunks and Ray Data's error column."""
    from batchvoc.ray_data import VocodeBatches

    good = speech_mels((0.3,))[0]
    np.save(tmp_path / "utt1.npy", good)
    names = ["utt1.npy", tmp_path / "utt1.npy", b"utt1.npy", np.str_("utt1.npy")]
    for name in names:
        with pytest.raises(ValueError, match=r"^mel #1: mel is a file name \('.*utt1.npy'\), not a mel: pass "
                                             r"np\.load\('.*utt1\.npy'\)"):  # fmt: skip
            pretrained([good, name])
    for other, kind in ((dict(mel=good), "dict"), (7, "int"), (object(), "object")):
        with pytest.raises(ValueError, match=rf"^mel #0: mel is a {kind}, not an array \[n_mels=80, n_frames\]$"):
            pretrained([other])
    results = pretrained.vocode_each([good, "utt1.npy"])
    assert results[0].ok and "mel_path" in results[1].error and results[1].error.startswith("mel is a file name")
    with pytest.raises(ValueError, match=r"^chunk #0: mel is a file name"):
        list(pretrained.stream(["utt1.npy"]))
    column = np.array(["utt1.npy"], dtype=object)
    stage = VocodeBatches("hifigan_v1_universal", checkpoint="pretrained", backend="eager", batch=3, window=96)
    assert stage(dict(mel=column))["error"][0] == results[1].error
    with pytest.raises(TypeError, match=r"^mels is a file name \('utt1.npy'\), not mels: pass \[np\.load\('utt1"):
        pretrained("utt1.npy")
    np.testing.assert_array_equal(pretrained([np.load(tmp_path / "utt1.npy")])[0], pretrained([good])[0])


def test_a_mel_with_size_1_axes_is_read_as_a_jobs_npy_mel_is(pretrained):
    """A TTS model's [1, n_mels, T] in a list (or a stream's chunk) is its [n_mels, T], as a job reads such a .npy;
    [1, n_mels, 1] is one frame. It was refused ('mel has shape [1, 80, 26]') though vocoder(mel) of the same
    tensor took it as a batch of one."""
    good = speech_mels((0.3,))[0]
    audio = pretrained([good])[0]
    for mel in (torch.from_numpy(good)[None], good[None, :, :, None], good[:, None]):
        np.testing.assert_array_equal(pretrained([mel])[0], audio)
    assert pretrained([good[None, :, :1]])[0].shape == (256,)
    chunks = [good[None, :, :10], good[None, :, 10:]]
    np.testing.assert_allclose(np.concatenate(list(pretrained.stream(chunks))), audio, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"mel #0: mel has shape \[2, 80, 25\], expected .*size-1 axes aside"):
        pretrained([np.stack([good, good])])


def test_non_float_mels_are_refused_as_a_job_refuses_them(pretrained):
    """int, bool, object or text mels (numpy, torch or lists) are refused, never cast: a job refuses the same
    data in a mel_path .npy (`mel_path 'x.npy' holds int16, not float values`), by the same check."""
    good = speech_mels((0.3,))[0]
    ints = np.round(good * 100).astype(np.int16)
    cases = [(ints, "int16"), (torch.from_numpy(ints), "int16"), (good > -5, "bool"),
             (torch.from_numpy(good > -5), "bool"), (ints.astype(np.int64).tolist(), "int64"),
             (good.astype(object), "object")]  # fmt: skip
    for bad, dtype in cases:
        with pytest.raises(ValueError, match=rf"^mel #1: mel holds {dtype}, not float values$"):
            pretrained([good, bad])
    results = pretrained.vocode_each([good, ints, torch.from_numpy(ints), good.astype(object), [[0.5], [1.0, 2.0]]])
    assert [r.ok for r in results] == [True, False, False, False, False]
    assert results[1].error == results[2].error == "mel holds int16, not float values"
    assert results[3].error == "mel holds object, not float values" and "not an array" in results[4].error
    for floats in (good.astype(np.float16), torch.from_numpy(good).to(torch.bfloat16), good.astype(np.float64)):
        assert pretrained.vocode_each([floats])[0].ok  # every float width is taken


def test_float64_values_beyond_float32_are_named_not_called_inf():
    """A float64 mel (numpy or torch) holding 1e300 is finite: the reason names the value out of float32's range
    and where it is, as a job's row check does (rows.finite_float32), not NaN or Inf."""
    from batchvoc.api import check_mel
    from batchvoc.errors import RowError

    mel = np.full((80, 6), -5.0)
    mel[3, 4] = 1e300
    for given in (mel, torch.from_numpy(mel)):
        with pytest.raises(RowError, match=r"1 value out of float32 range \(e.g. 1e\+300 at frame 4, band 3\)"):
            check_mel(given, 80)
    mel[3, 4] = np.inf
    with pytest.raises(RowError, match="1 NaN or Inf values of 480"):
        check_mel(mel, 80)


def test_mel_conventions_are_checked_and_converted(pretrained):
    """The job's convention checks: a dB mel is refused with its likely convention named; told that the mels
    are dB (input.mel_scale), the vocoder converts them and gives the ln mel's audio."""
    good = speech_mels((0.4,))[0]
    db = good * 20 / np.log(10)
    with pytest.raises(ValueError, match='mel #0: .*decibels.*mel_scale="db"'):
        pretrained([db])
    as_db = batchvoc.Vocoder.from_preset("hifigan_v1_universal", checkpoint="pretrained", backend="eager",
                                         batch=3, window=96, mel_scale="db")  # fmt: skip
    np.testing.assert_allclose(as_db([db])[0], pretrained([good])[0], atol=1e-4)
    (misread,) = as_db.vocode_each([good])  # ln mels read as dB: refused, naming the keyword that misread them
    assert 'read with mel_scale="db"' in misread.error and "input." not in misread.error, misread.error
    with pytest.raises(ConfigError, match="mel_scale: unknown mel scale 'log2'"):
        batchvoc.Vocoder.from_preset("hifigan_v1_universal", backend="eager", mel_scale="log2")


def test_a_doubtful_mel_is_vocoded_with_its_warning(pretrained):
    """What makes a job's row suspect reaches the API too: mel_convention=warn's finding, and a mel cut from
    mid-speech at 0.4x (no floor reached, values squeezed: conventions.looks_compressed) in either mode."""
    good = speech_mels((0.9,))[0]
    loud = good[:, good.max(axis=0) > good.max() - 4]  # frames of speech only, no pause
    warned = batchvoc.Vocoder.from_preset("hifigan_v1_universal", checkpoint="pretrained", backend="eager",
                                          batch=3, window=96, mel_convention="warn")  # fmt: skip
    db, squeezed, fine = warned.vocode_each([good * 20 / np.log(10), 0.4 * loud, good])
    assert db.ok and db.audio is not None and "decibels" in db.warning
    assert squeezed.ok and squeezed.warning, squeezed
    assert fine.ok and fine.warning is None
    (strict,) = pretrained.vocode_each([0.4 * loud])
    assert strict.ok and strict.warning == squeezed.warning


def test_short_mels_too_short_to_judge_alone_are_judged_together_as_a_jobs_rows(pretrained, speech, caplog):
    """log10 mels of single words (under 64 frames each, no clamped floor) pass alone; given together, as a job
    reads its rows, they are vocoded with the pooled doubt naming the keyword (manifest/short_rows.py)."""
    words = predicted_words(speech, get_preset("hifigan_v1_universal"), rows=4)
    log10 = [w / np.log(10) for w in words]
    assert all(r.ok and r.warning is None for w in log10 for r in pretrained.vocode_each([w]))
    results = pretrained.vocode_each(log10)
    assert all(r.ok and r.audio is not None and 'mel_scale="log10"' in r.warning for r in results), results
    assert all(r.ok and r.warning is None for r in pretrained.vocode_each(words))
    with caplog.at_level("WARNING"):
        pretrained(log10)
    assert sum("judged with the 3 other" in r.getMessage() for r in caplog.records) == 4


def test_convention_hints_name_the_keywords_not_the_jobs_keys(pretrained):
    """A caller of the API sets mel_scale= and mel_convention=, not input.mel_scale / check.mel_convention: the
    refusals and warnings of the convention checks say what to pass (they named the job's keys)."""
    good = speech_mels((0.9,))[0]
    loud = good[:, good.max(axis=0) > good.max() - 4]
    floored = np.maximum(good - 4, np.log(1e-5))  # quieter, reaching the clamped floor: log10 shows there
    cases = {"db": good * 20 / np.log(10), "gsv_norm": np.clip(good / 12, -1, 1), "log10": floored / np.log(10)}
    for scale, mel in cases.items():
        (refused,) = pretrained.vocode_each([mel])
        assert f'mel_scale="{scale}"' in refused.error, refused.error
        assert "input.mel_scale" not in refused.error, refused.error
    warned = batchvoc.Vocoder.from_preset("hifigan_v1_universal", checkpoint="pretrained", backend="eager",
                                          batch=3, window=96, mel_convention="warn")  # fmt: skip
    db, squeezed = warned.vocode_each([cases["db"], 0.4 * loud])
    assert 'mel_convention="warn": vocoded anyway' in db.warning and "check." not in db.warning, db.warning
    assert 'mel_scale="log10"' in squeezed.warning and "input." not in squeezed.warning, squeezed.warning
    with pytest.raises(ValueError, match='mel #1: .*mel_scale="log10" \\| "db" \\| "gsv_norm"'):
        pretrained([good, np.abs(good) / 12])  # [0, 1]: min-max normalised, the generic fix names every scale


def test_log_lines_name_the_keywords_not_the_jobs_keys(caplog):
    """from_preset's log lines say what its caller passed: checkpoint="random"'s warning and auto's reason named
    the job's keys (`model.checkpoint=random: ...`, `engine.backend=inductor to compile`)."""
    with caplog.at_level("INFO", logger="batchvoc"):
        vocoder = batchvoc.Vocoder.from_preset("hifigan_v1_universal", checkpoint="random", device="cpu")
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("batchvoc"))
    assert 'checkpoint="random": hifigan_v1_universal gets random weights' in text, text
    assert '(backend="inductor" to compile)' in text and 'backend="inductor"' in vocoder.engine.reason, text
    assert not any(k in text for k in ("model.", "engine.", "input.", "check.")), text


def test_batch_and_row_length_default_to_the_devices_as_a_jobs_do():
    """Left out, batch and window are a job's per-device defaults: on a CPU batch 1 and rows of 512 frames (batch 16
    there computed 15 rows of silence for one mel: 40.5 s against 1.7 s for a 2.8 s mel on 2 cores)."""
    from batchvoc.device_defaults import CPU_BATCH, CPU_ROW_LENGTH

    vocoder = batchvoc.Vocoder.from_preset("hifigan_v1_universal", checkpoint="pretrained", backend="eager",
                                           device="cpu")  # fmt: skip
    assert vocoder.batch == CPU_BATCH
    assert vocoder.window + 2 * vocoder.context == CPU_ROW_LENGTH


def test_short_mels_run_on_rows_of_their_own_size_with_the_full_rows_audio(pretrained):
    """An eager engine takes any shape: a call's mels run on rows and batches no larger than they fill (rows
    rounded up to 8 frames on a CPU), not on whole rows of log-mel silence. One frame on a CPU's rows of 512 cost
    5.4 s of CPU on 2 cores, as much as 5.6 s of audio; on a row of 32, 0.25-0.5 s. The audio is the full rows'
    (fp32 eager)."""
    real = pretrained.engine
    shapes = []

    def run(mel, valid):  # the real model, its input shapes recorded
        shapes.append(tuple(mel.shape))
        return real._run(mel, valid)

    engine = Engine(run, backend="eager", precision="fp32", device="cpu", hop=real.hop)
    vocoder = batchvoc.Vocoder(engine, pretrained.preset, pretrained.window, pretrained.context, pretrained.batch)
    mel = speech_mels()[0]  # 77 frames; the fixture's rows: 96 + 2 x 13 = 122 frames, batches of 3
    full = ChunkPlan(vocoder.window, vocoder.context, vocoder.batch, vocoder.preset.silence, vocoder.hop_length)
    for mels, shape in (([mel[:, 30:31]], (1, 80, 32)), ([mel[:, 30:60], mel[:, 5:6]], (1, 80, 48)),
                        ([mel], (1, 80, 80)), ([mel, mel], (2, 80, 122))):  # fmt: skip
        shapes.clear()
        audio = vocoder(mels)
        assert shapes == [shape]
        whole = [a for _, a in vocode_audio(real, list(enumerate(mels)), full)]
        for ours, theirs, m in zip(audio, whole, mels, strict=True):
            assert ours.shape == (m.shape[1] * 256,)
            np.testing.assert_allclose(ours, theirs, atol=2e-5, rtol=0)  # measured: max abs 1.05e-5


def test_a_stream_of_chunks_gives_the_whole_mels_audio_as_soon_as_each_frame_has_its_context(pretrained):
    """vocoder.stream(chunks): pieces whose concatenation is the one-shot audio (measured on a 30 s espeak-ng mel in
    chunks of 7, 100 and 0-60 frames: max abs 5.8e-5, SNR 96 dB), each chunk yielding the frames that now have
    `context` frames after them; torch and numpy chunks, empty ones skipped; a bad chunk named by its index."""
    mel = speech_mels((3.0,), seed=5)[0]  # 258 frames
    whole = pretrained([mel])[0]
    context, hop = pretrained.context, pretrained.hop_length
    rng = np.random.default_rng(0)
    sizes = [0, 1, 5, 13, 14, 40, 130, 0, 2] + list(rng.integers(1, 30, 20))
    cuts = np.minimum(np.cumsum([0, *sizes]), mel.shape[1]).tolist() + [mel.shape[1]]
    spans = enumerate(zip(cuts[:-1], cuts[1:], strict=True))
    chunks = [mel[:, a:b] if i % 2 else torch.from_numpy(mel[:, a:b]) for i, (a, b) in spans]  # views: strided
    received, given, pieces = 0, 0, []
    stream = pretrained.stream(iter(chunks))
    for chunk in chunks:  # feed one chunk at a time: what comes out is what its context allows
        received += chunk.shape[1]
        if received - context > given:
            pieces.append(next(stream))
            given += len(pieces[-1]) // hop
            assert given == received - context and pieces[-1].dtype == np.float32
    rest = list(stream)
    assert len(rest) == 1 and len(rest[0]) == context * hop
    audio = np.concatenate(pieces + rest)
    assert audio.shape == whole.shape
    np.testing.assert_allclose(audio, whole, atol=1e-4, rtol=0)
    assert 10 * np.log10(np.sum(whole**2) / np.sum((audio - whole) ** 2)) > 80
    assert list(pretrained.stream([])) == [] and len(np.concatenate(list(pretrained.stream([mel[:, :1]])))) == hop

    with pytest.raises(ValueError, match="chunk #2: .*NaN"):
        list(pretrained.stream([mel[:, :50], mel[:, 50:60], np.full((80, 3), np.nan, np.float32)]))
    log10 = batchvoc.Vocoder(pretrained.engine, pretrained.preset, pretrained.window, context, pretrained.batch,
                             MelChecks.for_preset(pretrained.preset, "log10", keys=API_KEYS))  # fmt: skip
    chunks = [mel[:, a : a + 50] / np.log(10) for a in range(0, mel.shape[1], 50)]
    np.testing.assert_allclose(np.concatenate(list(log10.stream(chunks))), whole, atol=1e-4, rtol=0)


@pytest.mark.parametrize("frames", [20, 258])
def test_a_streams_conventions_are_judged_on_its_first_second(pretrained, frames, caplog):
    """A stream of decibel frames was vocoded into garbage, chunk after chunk, its conventions never judged: now
    its first 96 frames (the whole mel where shorter) are, once they have arrived, as a call judges a mel: a
    refused convention raises naming those frames, a doubt (log10) is logged once and the stream goes on."""
    mel = speech_mels((3.0,), seed=5)[0][:, :frames]
    judged = min(frames, 96)
    chunks = [mel[:, a : a + 10] for a in range(0, frames, 10)]
    pieces = []
    with pytest.raises(ValueError, match=rf"^frames 0-{judged - 1}: values from .* spread .*: looks like dec"):
        pieces.extend(pretrained.stream(iter(c * 20 / np.log(10) for c in chunks)))
    assert sum(len(p) for p in pieces) <= (judged - pretrained.context) * pretrained.hop_length
    with caplog.at_level(logging.WARNING, logger="batchvoc.api"):
        audio = np.concatenate(list(pretrained.stream(c / np.log(10) for c in chunks)))
    doubts = [r.getMessage() for r in caplog.records if "looks like log10" in r.getMessage()]
    assert len(doubts) == (frames >= 96) and len(audio) == frames * pretrained.hop_length, doubts
    assert all(d.startswith("stream, frames 0-95: ") and 'mel_scale="log10"' in d for d in doubts), doubts


def test_bad_settings_name_the_keyword_with_the_job_key_as_key():
    """The text names what the caller passed (it named the job's keys: `set model.checkpoint=PATH`, `use
    engine.backend=auto`); `key` stays the job key."""
    from batchvoc.ray_data import VocodeBatches

    cases = [
        (dict(preset="nope"), "model.preset", "preset: unknown preset 'nope'"),
        (dict(preset="gsv_v4", checkpoint=None), "model.checkpoint", "set checkpoint=PATH"),
        (dict(checkpoint="/no/such.pth"), "model.checkpoint", '(checkpoint="pretrained" takes'),
        (dict(backend="warp"), "engine.backend", "backend: unknown backend 'warp'"),
        (dict(batch=0), "engine.batch", "batch: must be at least 1"),
        (dict(options={"mode": "fast"}), "engine.options.mode", 'options["mode"]: unknown value'),
        (dict(hparams={"width": 3}), "model.hparams.width", 'hparams["width"]: hifigan_v1_universal cannot be built'),
        (dict(mel_convention="strict"), "check.mel_convention", "mel_convention: 'strict' is not one of"),
    ]
    job_keys = ("model.", "engine.", "input.", "check.")
    for given, key, words in cases:
        given = {"preset": "hifigan_v1_universal", **given}
        with pytest.raises(ConfigError) as err:
            batchvoc.Vocoder.from_preset(**given)
        assert err.value.key == key and words in str(err.value), str(err.value)
        assert not any(k in str(err.value) for k in job_keys), str(err.value)
    with pytest.raises(ConfigError) as err:  # VocodeBatches passes its keywords to from_preset
        VocodeBatches("hifigan_v1_universal", audio_column="wave", backend="eager", mel_scale="log2")
    assert err.value.key == "input.mel_scale" and str(err.value).startswith("mel_scale: unknown mel scale 'log2'")


def test_ray_data_vocodes_in_place_on_a_cpu_actor(tmp_path, pretrained, ray_cluster):
    from batchvoc.ray_data import vocode_dataset

    mels = speech_mels((0.4, 0.25, 0.3), seed=9)
    # a pipeline that produces mels: [n_mels, T] tensors of different lengths, plus a bad row and a flat one
    items = [dict(id=f"u{i}", mel=m, speaker="s1") for i, m in enumerate(mels)]
    items.append(dict(id="bad", mel=mels[0][:40], speaker="s2"))
    ds = ray_cluster.data.from_items(items)
    out = vocode_dataset(ds, "hifigan_v1_universal", checkpoint="pretrained", backend="eager", batch=3, window=96,
                         concurrency=1, batch_size=2).take_all()  # fmt: skip
    by_id = {row["id"]: row for row in out}
    assert sorted(by_id) == ["bad", "u0", "u1", "u2"]
    expected = pretrained(mels)
    for i, audio in enumerate(expected):
        row = by_id[f"u{i}"]
        assert row["status"] == "ok" and row["error"] is None and row["sample_rate"] == 22050
        assert row["speaker"] == "s1" and "mel" not in row
        np.testing.assert_allclose(row["audio"], audio, atol=1e-5)
    assert by_id["bad"]["status"] == "error" and "40 mel bands" in by_id["bad"]["error"]
    assert len(by_id["bad"]["audio"]) == 0


def test_ray_data_reads_the_manifest_layout(tmp_path, pretrained, ray_cluster):
    from batchvoc.ray_data import VocodeBatches

    mels = speech_mels((0.3, 0.2), seed=4)
    rows = [dict(id=f"m{i}", mel=m.ravel(), n_frames=m.shape[1], n_mels=80) for i, m in enumerate(mels)]
    path = write_manifest(tmp_path / "m.parquet", rows)
    ds = ray_cluster.data.read_parquet(str(path))
    out = ds.map_batches(VocodeBatches, fn_constructor_kwargs=dict(preset="hifigan_v1_universal", backend="eager",
                                                                   batch=3, window=96, audio_column="wave"),
                         batch_format="numpy", batch_size=8, compute=ray_cluster.data.ActorPoolStrategy(size=1),
                         num_cpus=1).take_all()  # fmt: skip
    expected = pretrained(mels)
    for row in sorted(out, key=lambda r: r["id"]):
        i = int(row["id"][1:])
        assert row["status"] == "ok"
        np.testing.assert_allclose(row["wave"], expected[i], atol=1e-5)


def test_ray_data_flat_rows_are_refused_in_the_jobs_words(pretrained):
    """A flat mel whose size does not match n_frames, and an n_frames that is null or not positive, get the job's
    reasons (manifest.rows.flat_mel), not the Vocoder's shape complaint; the other rows are vocoded."""
    from batchvoc.ray_data import VocodeBatches

    mels = speech_mels((0.3, 0.2), seed=5)
    flat = [m.ravel() for m in mels]
    column = np.empty(4, dtype=object)
    column[:] = [flat[0], flat[1][:-3], flat[1], flat[0]]
    batch = dict(id=np.array(["a", "short", "none", "zero"]), mel=column,
                 n_frames=np.array([mels[0].shape[1], mels[1].shape[1], None, 0], dtype=object))  # fmt: skip
    stage = VocodeBatches("hifigan_v1_universal", checkpoint="pretrained", backend="eager", batch=3, window=96)
    out = stage(batch)
    assert list(out["status"]) == ["ok", "error", "error", "error"]
    np.testing.assert_allclose(out["audio"][0], pretrained(mels[:1])[0], atol=1e-5)
    assert out["error"][1].startswith(f"mel holds {flat[1].size - 3} values, not n_mels x n_frames = 80 x ")
    assert out["error"][2].startswith("n_frames is None: no frames to vocode")
    assert out["error"][3].startswith("n_frames is 0: no frames to vocode")
    assert all(len(out["audio"][i]) == 0 for i in (1, 2, 3))
