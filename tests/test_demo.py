"""The demo's input (batchvoc/demo.py): made once per settings, kept for the demo's reruns."""

import numpy as np
import pyarrow.parquet as pq

from batchvoc.demo import build_demo_manifest
from batchvoc.models.presets import get_preset


def test_the_demo_manifest_is_made_once_per_settings_and_made_again_when_they_change(tmp_path):
    preset = get_preset("hifigan_v1_universal")
    path = build_demo_manifest(tmp_path, preset, utterances=2, seconds=0.3)
    table = pq.read_table(path)
    assert table.num_rows == 2 and table.column("n_mels").to_pylist() == [80, 80]
    mel = np.asarray(table.column("mel")[0].as_py()).reshape(80, -1)
    assert mel.shape[1] == table.column("n_frames")[0].as_py() and mel.std() > 0.5  # speech-like, not a constant
    made = path.stat().st_mtime_ns
    assert build_demo_manifest(tmp_path, preset, utterances=2, seconds=0.3) == path
    assert path.stat().st_mtime_ns == made  # kept: a rerun reads what the first run read
    assert pq.read_table(build_demo_manifest(tmp_path, preset, utterances=3, seconds=0.3)).num_rows == 3
    path.write_bytes(b"not parquet")  # a damaged file is made again
    assert pq.read_table(build_demo_manifest(tmp_path, preset, utterances=3, seconds=0.3)).num_rows == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.made_with.json", "demo.parquet"]  # no partial file
