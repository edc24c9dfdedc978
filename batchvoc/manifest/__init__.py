"""Parquet mel manifests: the input schema, per-row validation, shard planning, and building manifests.

`python -m batchvoc.manifest` builds a manifest from a folder of audio files or of .npy mels.
"""

from batchvoc.manifest.rows import MelRow, read_shard_rows
from batchvoc.manifest.schema import check_manifest_files, check_schema, find_manifest_files
from batchvoc.manifest.shards import Shard, deal_round_robin, plan_shards

__all__ = [
    "MelRow",
    "Shard",
    "check_manifest_files",
    "check_schema",
    "deal_round_robin",
    "find_manifest_files",
    "plan_shards",
    "read_shard_rows",
]
