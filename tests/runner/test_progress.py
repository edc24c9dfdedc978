"""Progress moves per vocoded batch: the driver's poll of a busy actor sees a shard part done."""

import io
import time

import pytest

from batchvoc.manifest import find_manifest_files, plan_shards
from batchvoc.models.presets import get_preset
from batchvoc.runner.actors import RemoteWorker
from batchvoc.runner.cluster import plan_actors
from tests.conftest import mel_rows, random_log_mel, write_manifest
from tests.jobs import small_job


def test_one_shard_reports_audio_seconds_batch_by_batch(tmp_path, ray_cluster):
    manifest = write_manifest(tmp_path / "in" / "m.parquet", mel_rows(8, 80, frames=80), row_group_size=8)
    (shard,) = plan_shards(find_manifest_files(manifest), 10**9)
    settings = small_job(tmp_path, manifest=str(manifest), batch=1, window=40)
    plan = plan_actors(1)
    actor = RemoteWorker.options(**plan.options).remote(settings, "actor-0", plan.threads)
    preset = get_preset("hifigan_v1_universal")
    seconds = shard.frames * preset.hop_length / preset.sample_rate
    running = actor.run.remote(shard)
    seen = []
    while not ray_cluster.wait([running], timeout=0)[0]:
        seen.append(ray_cluster.get(actor.poll.remote())["vocoded_s"])
        time.sleep(0.05)
    ray_cluster.get(running)
    final = ray_cluster.get(actor.poll.remote())
    ray_cluster.kill(actor)
    parts = sorted({s for s in seen if 0 < s < seconds - 1e-6})
    assert len(parts) >= 3, f"progress moved only {len(parts)} times within the shard: {parts}"
    assert abs(final["vocoded_s"] - seconds) < 1e-6 and final["first_audio_at"] is not None


def test_the_bar_ends_at_the_audio_of_the_finished_shards():
    """An actor is not polled after its last shard: the bar takes the done shards' audio when that is more (the
    demo's bar stopped at 72%), their planned audio in full (rows a shard refused wrote none, and the bar stopped at
    76%), never goes back, and never passes the total."""
    import io

    from tqdm import tqdm

    from batchvoc.manifest import Shard
    from batchvoc.runner.dealer import AudioTotal, _Actor, _show

    shards = [Shard("a", "m", 0, 6, (0,), 0, 600), Shard("b", "m", 6, 10, (0,), 6, 400)]
    total = AudioTotal(shards, seconds_per_frame=0.01)
    bar = tqdm(total=10.0, file=io.StringIO(), mininterval=30)
    crew = [_Actor(handle=None, name="actor-0", vocoded={101: 7.2})]
    _show(bar, crew, total)
    assert bar.n == 7.2
    total.finished(shards[0], {"audio_seconds": 6.0})
    total.finished(shards[1], {"audio_seconds": 1.5})  # 2 of its rows refused: no audio, but the shard is done
    _show(bar, crew, total)
    assert bar.n == 10.0
    crew[0].vocoded[102] = 5.0  # a restarted actor's polls add up past the total: capped
    _show(bar, crew, total)
    assert bar.n == 10.0


def test_the_bar_shows_the_rounded_audio_and_ends_exactly_at_its_total(recwarn):
    """The bar was moved by n + (vocoded - n), which is not vocoded in floats: a user's npy job ended at
    23.300000000000004/23.3 with tqdm's 'clamping frac to range [0, 1]' warning and a remaining time of -00:00."""
    import io

    from tqdm import tqdm

    from batchvoc.manifest import Shard
    from batchvoc.runner.dealer import AudioTotal, _Actor, _show

    total = AudioTotal([Shard("a", "m", 0, 7, (0,), 0, 2006)], seconds_per_frame=256 / 22050)  # 23.29 s
    shown = io.StringIO()
    bar = tqdm(total=round(total.seconds, 1), file=shown, mininterval=0, miniters=1)
    crew = [_Actor(handle=None, name="actor-0")]
    for polled in (0.3, 0.9, 4.1):  # 0.3 + (0.9 - 0.3) is 0.9000000000000001, 4.1 + (23.3 - 4.1) 23.300000000000004
        crew[0].vocoded[101] = polled
        _show(bar, crew, total)
        assert bar.n == polled, bar.n
    crew[0].vocoded[101] = total.seconds
    _show(bar, crew, total)
    assert bar.n == bar.total == 23.3
    bar.close()
    assert not [w for w in recwarn if "clamping frac" in str(w.message)]
    assert "0000000" not in shown.getvalue() and "9999999" not in shown.getvalue(), shown.getvalue()


class _Terminal(io.StringIO):
    """A console that says it is a terminal (the bar is drawn only on one)."""

    def isatty(self) -> bool:
        return True


def test_log_lines_go_above_the_bar_not_onto_its_line(monkeypatch):
    """A log line written to the console while the bar is shown starts a line of its own (the bar is cleared and
    drawn again under it), as in a job's 'actor-0 ready' line."""
    import logging
    import sys

    from batchvoc.runner.dealer import progress_bar

    console = _Terminal()
    monkeypatch.setattr(sys, "stderr", console)
    handler = logging.StreamHandler(sys.stderr)  # a console handler, as Hydra's job logging adds
    logging.getLogger().addHandler(handler)
    try:
        with progress_bar(10.0) as bar:
            bar.update(1.0)
            bar.refresh()
            logging.getLogger("batchvoc.runner.dealer").warning("actor-0 ready in 2.0 s")
    finally:
        logging.getLogger().removeHandler(handler)
    text = console.getvalue()
    at = text.index("actor-0 ready")
    assert "1.0/10.0" in text[:at], "the bar was drawn before the log line"
    assert text[at - 1] in "\r\n", f"the log line shares the bar's line: {text[max(0, at - 40) : at + 20]!r}"


@pytest.mark.parametrize("columns", [0, 60])
def test_the_bar_fits_its_terminal_and_one_that_reports_no_width_gets_a_fixed_width(monkeypatch, columns):
    """A pseudo-terminal whose size was never set (0 columns: some CI runners, `script`) drew an empty line; one of
    a known size gets a bar of its width."""
    import fcntl
    import os
    import struct
    import sys
    import termios

    from batchvoc.runner.dealer import BAR_COLUMNS, progress_bar

    main, side = os.openpty()
    if columns:
        fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    assert os.get_terminal_size(side).columns == columns
    with os.fdopen(side, "w", buffering=1) as console, os.fdopen(main, "rb", buffering=0) as screen:
        monkeypatch.setattr(sys, "stderr", console)
        with progress_bar(10.0) as bar:
            bar.update(5.0)
            bar.refresh()
        console.flush()
        drawn = screen.read(4096).decode()
    lines = [line for line in drawn.replace("\r", "\n").split("\n") if line.strip()]
    assert lines and "5.0/10.0" in lines[-1] and len(lines[-1]) <= (columns or BAR_COLUMNS), drawn


def test_the_total_of_shards_without_n_frames_becomes_the_audio_they_wrote():
    """Shards planned at a guess of frames a row: once one is done its audio replaces its guess, and the
    others' guesses become their rows at the audio a row of those done; shards with n_frames stay as planned."""
    from batchvoc.manifest import Shard
    from batchvoc.runner.dealer import AudioTotal

    guessed = [Shard(f"g{k}", "g", 10 * k, 10 * k + 10, (0,), 0, 5000, frames_guessed=True) for k in range(3)]
    known = Shard("k0", "k", 0, 10, (0,), 0, 400)
    total = AudioTotal([*guessed, known], seconds_per_frame=0.01)
    assert total.seconds == 154.0  # 3 x 50 s guessed + 4 s
    total.finished(guessed[0], {"audio_seconds": 12.0})
    assert total.seconds == 12.0 + 2 * 12.0 + 4.0
    total.finished(known, {"audio_seconds": 3.5})  # n_frames known: its planned audio stays (the bar tops it up)
    total.finished(guessed[1], {"audio_seconds": 8.0})
    assert total.seconds == 12.0 + 8.0 + 10.0 + 4.0
    total.finished(guessed[2], {"audio_seconds": 9.0})
    assert total.seconds == 12.0 + 8.0 + 9.0 + 4.0


def test_a_job_without_n_frames_shows_the_audio_of_its_mels(tmp_path, ray_cluster, monkeypatch):
    """A user's job of ~5 s of mel_path rows (no n_frames column) showed a bar of 29 s (500 frames a row
    guessed): its bar now ends at the audio its mels hold, all of it vocoded."""
    import re
    import sys

    import numpy as np

    from batchvoc.runner.driver import run_job

    rng = np.random.default_rng(0)
    frames = rng.integers(20, 70, 24).tolist()  # more rows than the headers sampled: the done shards correct it
    (tmp_path / "in").mkdir()
    for i, n in enumerate(frames):
        np.save(tmp_path / "in" / f"u{i}.npy", random_log_mel(rng, 80, n))
    write_manifest(tmp_path / "in" / "m.parquet", [dict(id=f"u{i}", mel_path=f"u{i}.npy") for i in range(24)])
    console = _Terminal()  # the bar is drawn on a terminal
    monkeypatch.setattr(sys, "stderr", console)
    report = run_job(small_job(tmp_path, cpu_actors=1, batch=1, window=64, shard_seconds=1.0))
    assert report.exit_code == 0
    audio = report.summary.audio_seconds
    assert abs(audio - sum(frames) * 256 / 22050) < 1e-3
    done, total = map(float, re.findall(r"([\d.]+)/([\d.]+) \[", console.getvalue())[-1])
    assert total == done == round(audio, 1), f"the bar ended at {done}/{total} s for {audio:.2f} s of audio"


def test_a_console_redirected_to_a_file_gets_progress_lines_not_a_bar(monkeypatch, caplog):
    """`python -m batchvoc ... > log 2>&1`: the bar's redraws left carriage-return fragments glued to the log lines
    in the file (a new user's report). Where stderr is no terminal no bar is drawn; a log line gives the progress
    every PROGRESS_LOG_S instead."""
    import logging
    import sys

    from batchvoc.manifest import Shard
    from batchvoc.runner import dealer

    console = io.StringIO()
    monkeypatch.setattr(sys, "stderr", console)
    monkeypatch.setattr(dealer, "PROGRESS_LOG_S", 0.0)
    caplog.set_level(logging.INFO, logger="batchvoc.runner.dealer")
    total = dealer.AudioTotal([Shard("s0", "f", 0, 10, (0,), 0, 1000)], seconds_per_frame=0.01)
    with dealer.progress_bar(total.seconds) as bar:
        total.finished(Shard("s0", "f", 0, 10, (0,), 0, 1000), {"audio_seconds": 10.0})
        dealer._show(bar, [], total)
        logging.getLogger("batchvoc.runner.dealer").warning("actor-0 ready in 2.0 s")
    assert "\r" not in console.getvalue() and "s audio" not in console.getvalue(), console.getvalue()
    assert "vocoded 10.0 of 10.0 s of audio (100%)" in caplog.text
