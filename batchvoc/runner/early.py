"""A job's start before Hydra runs it: the command line's one job checked and its Ray begun at once.

`python -m batchvoc` composes and checks every job of its command line first (cli.check_command_line), then
Hydra composes the job again and calls `__main__.run`. For a command line of one job, `EarlyStart.start` runs the
quick checks (runner/checks.py, no torch) and begins Ray on its own thread (runner/cluster.RayThread) right after
that first compose, ~0.6 s before `run` would; `run` takes them when its settings are the same, and otherwise
checks and starts its own (the early Ray is shut down unused). Bad configuration is kept in `error`: `main`
reports it before Hydra starts, as it does a sweep's (no log folder in output.dir for a job that never ran).
"""

from __future__ import annotations

from typing import Any

from batchvoc.errors import ConfigError
from batchvoc.manifest.schema import ManifestFiles
from batchvoc.runner.checks import makes_its_input, quick_checks
from batchvoc.runner.cluster import INTERRUPTED_WAIT_S, RayThread
from batchvoc.settings import JobSettings
from batchvoc.storage import Store


def has_work(settings: JobSettings) -> bool:
    """False where output.dir holds a finished job's summary.json: a rerun usually has nothing to do, and the
    driver plans it before starting Ray for any shards left. An unreadable output.dir is the driver's to report."""
    try:  # quick_checks has set the storage options
        return unfinished(Store(settings.out_url))
    except Exception:  # noqa: BLE001 - check_settings names the key
        return False


def unfinished(store: Store) -> bool:
    """Whether output.dir's job has shards left to run: no summary.json, or one that says the job ended before
    its last shard (Ctrl-C, an early stop, a write fault: `stopped_early`, `shards_not_written`) or with shards
    that could not finish; an unreadable summary.json counts as none."""
    if not store.exists("summary.json"):
        return True
    try:
        said = store.read_json("summary.json")
    except Exception:  # noqa: BLE001 - a summary that cannot be read says nothing
        return True
    return bool(said.get("stopped_early") or said.get("shards_not_written") or said.get("shards_failed"))


def starts_ray_early(settings: JobSettings) -> bool:
    """Whether Ray starts (~4 s) on a thread while the driver imports torch and plans the job (~3 s on a GPU
    machine): where the job has work, and not as a Ray client (ray://): connected, it would turn the actor class's
    @ray.method options into its own, which lack some."""
    return has_work(settings) and not settings.address.startswith("ray://")


class EarlyStart:
    """The checked manifest files and the RayThread (or None) begun for one job's settings, until `run` takes
    them or `close` shuts the Ray down."""

    def __init__(self) -> None:
        self.settings: JobSettings | None = None
        self.files = ManifestFiles([])
        self.ray_thread: RayThread | None = None
        self.error: ConfigError | None = None  # the settings' or the quick checks' refusal of this job

    def start(self, cfg: Any) -> None:
        """Check the job of this composed config and begin its Ray; for a config the settings or the checks refuse,
        `error` (and no Ray). The demo without a manifest (it builds its input when it runs) is checked but for its
        manifest, and its Ray is left to `run`."""
        try:
            settings = JobSettings.from_config(cfg)
        except ConfigError as err:
            self.error = err
            return
        if makes_its_input(cfg):
            try:
                quick_checks(settings, manifest=False)
            except ConfigError as err:
                self.error = err
            return
        try:
            files = quick_checks(settings)
        except ConfigError as err:  # kept for `take`: a store not reached is not waited for twice
            self.settings, self.error = settings, err
            return
        self.settings, self.files = settings, files
        self.ray_thread = RayThread(settings.address) if starts_ray_early(settings) else None

    def take(self, settings: JobSettings) -> tuple[ManifestFiles, RayThread | None] | None:
        """(manifest files, RayThread or None) begun for these settings, once; None for other settings (their
        early Ray is shut down) or where nothing was begun. Raises the quick checks' ConfigError where they
        refused these settings."""
        if self.settings is None or self.settings != settings:
            self.close()
            return None
        if self.error is not None:
            error, self.settings, self.error = self.error, None, None
            raise error
        taken = self.files, self.ray_thread
        self.settings, self.ray_thread = None, None
        return taken

    def close(self, interrupted: bool = False) -> None:
        """Shut down an early Ray that no job took (the job stopped before `run`); `interrupted` (Ctrl-C): waiting
        for its start at most INTERRUPTED_WAIT_S."""
        if self.ray_thread is not None:
            self.ray_thread.close(INTERRUPTED_WAIT_S if interrupted else None)
        self.settings, self.ray_thread, self.error = None, None, None
