"""batchvoc: mel-spectrogram manifests to audio at corpus scale."""

__version__ = "0.1.0"
