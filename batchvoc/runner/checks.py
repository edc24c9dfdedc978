"""The job's quick checks: what can be checked with neither torch nor Ray, so that bad configuration stops the
command in a second, before Ray starts (`python -m batchvoc` runs them first; the driver again for jobs made in
Python). Each failure is a ConfigError naming the key."""

from __future__ import annotations

from batchvoc import storage
from batchvoc.backends import check_names
from batchvoc.manifest import find_manifest_files
from batchvoc.outputs import check_lhotse
from batchvoc.settings import JobSettings
from batchvoc.sink import check_format, check_writable


def quick_checks(settings: JobSettings) -> list[str]:
    """Output format, engine names and options, the manifest files, output.dir writable, lhotse when asked;
    returns the manifest files."""
    storage.set_options(settings.storage_options)
    check_format(settings.fmt, settings.subtype)
    check_names(settings.backend, settings.precision, getattr(settings, "engine_options", None))
    files = find_manifest_files(settings.manifest)
    check_writable(settings.out_url)
    if settings.lhotse:
        check_lhotse()
    return files
