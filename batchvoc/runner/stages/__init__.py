"""The shard pipeline's stages, one module each: read -> check -> vocode -> write (wired by runner/pipeline.py)."""
