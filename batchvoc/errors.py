"""The two kinds of failure batchvoc tells apart: bad configuration (stop before any work) and a bad row."""


class ConfigError(Exception):
    """Bad configuration: the job stops before any work, naming the key to change."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class RowError(ValueError):
    """One bad input row: it becomes a status=error row with this one-line reason; other rows go on."""
