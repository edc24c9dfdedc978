import numpy as np
import soundfile as sf

from batchvoc.manifest import find_manifest_files, plan_shards, read_shard_rows
from batchvoc.manifest.__main__ import main
from batchvoc.models.presets import get_preset


def _rows(path, n_mels):
    (shard,) = plan_shards(find_manifest_files(path), 10**9)
    return list(read_shard_rows(shard, n_mels))


def test_audio_folder_becomes_inline_mels(tmp_path):
    fe = get_preset("hifigan_v1_universal").front_end
    (tmp_path / "wavs" / "spk").mkdir(parents=True)
    t = np.arange(fe.sample_rate // 2) / fe.sample_rate
    sf.write(tmp_path / "wavs" / "spk" / "a.wav", 0.3 * np.sin(2 * np.pi * 440 * t), fe.sample_rate)
    sf.write(tmp_path / "wavs" / "b.flac", 0.3 * np.sin(2 * np.pi * 220 * t[:4000]), fe.sample_rate)
    main(["audio", str(tmp_path / "wavs"), str(tmp_path / "m.parquet"), "--preset", "hifigan_v1_universal"])
    rows = _rows(tmp_path / "m.parquet", fe.n_mels)
    assert [r.id for r in rows] == ["b", "spk/a"]
    assert all(r.error is None for r in rows)
    assert rows[0].mel.shape == (80, 4000 // fe.hop_length)
    assert rows[1].mel.shape == (80, len(t) // fe.hop_length)


def test_npy_folder_becomes_mel_path_rows(tmp_path):
    (tmp_path / "mels").mkdir()
    for i, frames in enumerate([5, 9]):
        np.save(tmp_path / "mels" / f"u{i}.npy", np.full((100, frames), -4.0, np.float32))
    main(["npy", str(tmp_path / "mels"), str(tmp_path / "manifest.parquet")])
    rows = _rows(tmp_path / "manifest.parquet", 100)
    assert [(r.id, r.mel.shape) for r in rows] == [("u0", (100, 5)), ("u1", (100, 9))]
