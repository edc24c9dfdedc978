"""The driver's hold on output.dir for one job: the lock, the recorded identity, the shards already done."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from batchvoc.chunking import ChunkPlan
from batchvoc.errors import ConfigError, counted
from batchvoc.manifest import Shard, find_manifest_files
from batchvoc.manifest.mel_marks import changed_rows
from batchvoc.models.presets import Preset
from batchvoc.runner.identity import RECORD, claim, job_identity
from batchvoc.runner.lock import LOCK, JobLock
from batchvoc.settings import JobSettings
from batchvoc.sink import AUDIO_DIR, done_shards, finished_stats, shards_missing_outputs, shards_with_failed_rows
from batchvoc.storage import Store, classify, reaching

log = logging.getLogger(__name__)
PACKING = "shard_packing"  # job.json's key: the chunk plan the job's shards were cut for (manifest/shards.py)


@dataclass
class OutputHold:
    """output.dir held by this job: `store` writes with the job's `token`. After `claim`, `state` is new |
    resumed | overwritten and `done` names the shards an earlier run of the same job finished."""

    store: Store
    token: str
    state: str = ""
    done: set[str] = field(default_factory=set)
    found: bytes | None = None  # job.json as claim found it (None: there was none), for `unclaim`
    stats: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # the done shards' stats, read by claim
    changed_rows: int = 0  # rows vocoded again for their mel files changed since (redo_changed_mels)

    def claim(self, settings: JobSettings, preset: Preset, identity: dict[str, Any] | None = None) -> None:
        """Check or record the job's identity (job.json) and clear stale temporary files; before any work.
        `identity`: `identify(settings, preset)` taken ahead (it hashes the input), or None: taken here. `done`
        then names the shards finished before, less those whose stats count failed rows under output.retry_failed.

        Raises ConfigError (key output.dir) when the folder holds another job's outputs (unless
        output.overwrite=true, which deletes them).
        """
        identity = identify(settings, preset) if identity is None else identity
        with reaching("output.dir", self.store.url):
            try:
                self.found = self.store.read_bytes(RECORD) if self.store.exists(RECORD) else None
                self.state = claim(self.store, identity, settings.overwrite)
            except OSError as err:  # job.json cannot be written (no space, read-only, ...): nothing can be
                raise ConfigError("output.dir", str(classify(err, self.store.url, RECORD))) from err
            self.done = done_shards(self.store) if self.state == "resumed" else set()
            stats = self.stats = finished_stats(self.store, self.done)
            retried = set()
            if settings.retry_failed:  # their ok rows' files are reused (ShardSink.reuse)
                retried = shards_with_failed_rows(stats)
                self.done -= retried
            self._redo_missing_outputs({name: stats[name] for name in self.done}, settings.fmt)
            removed = _remove_stale_partials(self.store, self.done)
        log.info("output.dir %s: %s job, %s done before%s%s", self.store.url, self.state,
                 counted(len(self.done) + len(retried), "shard"),
                 f" ({len(retried)} with failed rows run again: output.retry_failed)" if retried else "",
                 f", {counted(removed, 'temporary file')} removed" if removed else "")  # fmt: skip

    def _redo_missing_outputs(self, stats: dict[str, dict[str, Any] | None], fmt: str) -> None:
        """Finished shards (their finished_stats) whose audio files or stats were removed since (by hand, a cleanup,
        a lost disk) are not done: they run again, their audio files still there reused, so the job ends with every
        row's file and counts."""
        missing = shards_missing_outputs(self.store, stats, fmt) if stats else {}
        if missing:
            named = sorted(missing)[:3]
            said = "; ".join(f"{name}: {missing[name]} missing" for name in named)
            more = f"; and {len(missing) - len(named)} more" if len(missing) > len(named) else ""
            one = len(missing) == 1
            log.warning("%s lost outputs since %s finished (%s%s): %s again, the audio files still there reused",
                        counted(len(missing), "finished shard"), "it" if one else "they", said, more,
                        "it runs" if one else "they run")  # fmt: skip
            self.done -= set(missing)

    def redo_changed_mels(self, shards: list[Shard], fmt: str) -> None:
        """Done `shards` whose rows' .npy mel files were rewritten (or came, for a row that failed on a missing
        one) since they finished, as the marks their stats keep say (manifest/mel_marks.py), are not done: each
        one's output manifest goes first (so a rerun stopped halfway runs it again), then those rows' audio files;
        the shard runs again, vocoding those rows from their files as they are now and reusing its other rows'
        audio. Said once, on the console."""
        with reaching("input.manifest", shards[0].file if shards else None):
            changed = changed_rows([s for s in shards if s.name in self.done], self.stats)
        if not changed:
            return
        rows = sum(len(ids) for ids in changed.values())
        named = [f"{name}: {', '.join(sorted(ids)[:3])}{' ...' if len(ids) > 3 else ''}"
                 for name, ids in sorted(changed.items())[:3]]  # fmt: skip
        more = f"; and {len(changed) - len(named)} more shards" if len(changed) > len(named) else ""
        whose = "its shard" if rows == 1 else "their shards" if len(changed) > 1 else "their shard"
        log.warning("the .npy mel files of %s changed since %s finished (%s%s): vocoded again from the files as "
                    "they are now, in %s run again (the other rows' audio reused)", counted(rows, "row"), whose,
                    "; ".join(named), more, counted(len(changed), "shard"))  # fmt: skip
        with reaching("output.dir", self.store.url):
            for name, ids in changed.items():
                self.store.remove(f"manifest/{name}.parquet")  # not done from here on
                for key in ids:
                    self.store.remove(f"{AUDIO_DIR}/{name}/{key}.{fmt}")
        self.done -= set(changed)
        self.changed_rows = rows

    def shard_packing(self, preset: Preset, decide: Callable[[], ChunkPlan]) -> ChunkPlan | None:
        """The chunk plan this job's shards are cut for (manifest/shards.py `packing`), after `claim`.

        A resumed job keeps the one its job.json records, whatever engine runs it now (another batch or window,
        other hardware), so its shards keep their names and its done ones stay done; one recorded by a batchvoc
        that cut shards on audio alone (no `shard_packing` in job.json) gets None, that cut. A new job takes
        `decide()` (the engine's plan, which may start Ray to learn the device) and records it in job.json.
        Raises ConfigError (output.dir) when job.json cannot be written.
        """
        if self.state == "resumed":
            with reaching("output.dir", self.store.url):
                recorded = self.store.read_json(RECORD).get(PACKING)
            if not recorded:
                return None
            return ChunkPlan(int(recorded["chunk_frames"]), int(recorded["context"]), int(recorded["batch"]),
                             preset.silence, preset.hop_length, recorded.get("gap"))  # fmt: skip
        plan = decide()  # outside `reaching`: its errors (Ray's) are not output.dir's
        with reaching("output.dir", self.store.url):
            record = dict(self.store.read_json(RECORD))
            record[PACKING] = {"chunk_frames": plan.chunk_frames, "context": plan.context, "batch": plan.batch,
                               "gap": plan.gap}  # fmt: skip
            try:
                self.store.write_json(RECORD, record)
            except OSError as err:
                raise ConfigError("output.dir", str(classify(err, self.store.url, RECORD))) from err
        return plan

    def unclaim(self) -> None:
        """The job was refused before any work (a ConfigError after `claim`: a cluster.address nothing answers at):
        job.json as it was found, removed where there was none. Outputs output.overwrite deleted stay deleted."""
        if self.state not in ("new", "overwritten"):  # resumed: job.json was left as it was
            return
        try:
            if self.found is None:
                self.store.remove(RECORD)
            else:
                self.store.write_bytes(RECORD, self.found)
        except Exception as err:  # noqa: BLE001 - the refusal is what the user must read; this is a note
            log.warning("job.json in %s not restored: %s", self.store.url, err)
        self.state = ""


def identify(settings: JobSettings, preset: Preset) -> dict[str, Any]:
    """The job's identity (runner/identity.py): its output settings and its input files' sizes and digests."""
    with reaching("input.manifest", settings.manifest):
        return job_identity(settings, preset, find_manifest_files(settings.manifest, settings.out_url))


@contextmanager
def hold_output(settings: JobSettings) -> Iterator[OutputHold]:
    """Lock output.dir for this job (released on exit); ConfigError naming the job that holds it already."""
    with reaching("output.dir", settings.out_url):
        store = Store(settings.out_url)
        lock = JobLock(store)
        try:
            lock.acquire()
        except OSError as err:  # the lock file cannot be written: nothing else could be either
            raise ConfigError("output.dir", str(classify(err, store.url, LOCK))) from err
    try:
        store.token = lock.token
        hold = OutputHold(store, lock.token)
        try:
            yield hold
        except ConfigError:  # refused before any work (ConfigErrors come before it): output.dir as it was found
            hold.unclaim()
            raise
    finally:
        lock.release()


def _remove_stale_partials(store: Store, done: set[str]) -> int:
    """Temporary files of earlier runs (any job's: we hold the lock, so none is writing) at the top, in
    manifest/ and stats/, and in the audio folders of shards not done; done shards' folders are not walked."""
    removed = sum(store.remove_partials(folder, any_job=True, recursive=False) for folder in ("", "manifest", "stats"))
    for shard in store.entries("audio") - done:
        removed += store.remove_partials(f"audio/{shard}", any_job=True)
    return removed
