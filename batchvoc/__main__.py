"""python -m batchvoc job=NAME [key=value ...]: vocode a Parquet mel manifest into audio files."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, open_dict

from batchvoc.errors import ConfigError

CONF = str(Path(__file__).resolve().parent.parent / "conf")
log = logging.getLogger("batchvoc")


@hydra.main(version_base="1.3", config_path=CONF, config_name="config")
def main(cfg: DictConfig) -> None:
    logging.getLogger().setLevel(cfg.get("log_level", "INFO"))
    try:
        code = run(cfg)
    except ConfigError as err:
        log.error("configuration: %s", err)
        print(f"batchvoc: cannot run: {err}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print("batchvoc: interrupted; run the same command again to finish what is missing", file=sys.stderr)
        code = 130
    sys.exit(code)


def run(cfg: DictConfig) -> int:
    from batchvoc.runner.driver import run_job
    from batchvoc.settings import JobSettings

    if cfg.get("demo") and not cfg.input.manifest:
        _make_demo_input(cfg)
    settings = JobSettings.from_config(cfg)
    report = run_job(settings)
    s = report.summary
    print(
        f"batchvoc: {s['rows_ok']} rows ok, {s['rows_failed']} failed; {s['audio_seconds'] / 3600:.3f} h of audio, "
        f"{s['x_realtime']:.1f}x real time on {s['actors']} actor(s) ({s['backend']} {s['precision']}); "
        f"outputs in {settings.out_path} (summary.json)"
    )
    if report.failed_shards:
        print(f"batchvoc: shards that could not finish: {', '.join(report.failed_shards)}; run again to retry")
    return report.exit_code


def _make_demo_input(cfg: DictConfig) -> None:
    from batchvoc.demo import build_demo_manifest
    from batchvoc.models.presets import get_preset

    folder = Path(cfg.output.dir).expanduser().resolve() / "demo_input"
    path = build_demo_manifest(folder, get_preset(cfg.model.preset), cfg.demo.utterances, cfg.demo.seconds)
    with open_dict(cfg):
        cfg.input.manifest = str(path)
    log.info("demo manifest: %s", path)


if __name__ == "__main__":
    main()
