"""The kinds of failure batchvoc tells apart: bad configuration (stop before any work), a job that could not start
its workers, and a bad row."""


def first_line(err: BaseException) -> str:
    """The first non-empty line of an error's message, stripped (its type's name where it has none): one line of
    it for a message that must stay on one line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


class ConfigError(Exception):
    """Bad configuration: the job stops before any work, naming the key to change. `key` is the job's key;
    `shown`, where given, is what the text calls it instead (the Python API's keyword: batchvoc.api)."""

    def __init__(self, key: str, message: str, shown: str | None = None):
        super().__init__(f"{shown or key}: {message}")
        self.key = key
        self.message = message
        self.shown = shown

    def __reduce__(self):  # pickled whole: an actor's ConfigError reaches the driver through Ray as itself
        return type(self), (self.key, self.message, self.shown)


class StartError(Exception):
    """No worker could start its engine (a CUDA fault, memory, a compiler's failure): the job stops in one line
    with the first worker's error; `cause` holds that error as raised (Ray's, with the worker's traceback), logged
    in full."""

    def __init__(self, message: str, cause: BaseException):
        super().__init__(message)
        self.cause = cause


class RowError(ValueError):
    """One bad input row: it becomes a status=error row with this one-line reason; other rows go on."""
