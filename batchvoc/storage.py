"""Local paths and fsspec URLs (s3://, gs://, hf://, ...): finding, reading and writing the job's files.

Credentials and endpoints come from each store's standard environment (for S3 the `AWS_*` variables,
`AWS_ENDPOINT_URL` included) and from `io.storage_options` (keyword arguments of the fsspec filesystem, e.g.
`{"endpoint_url": ..., "anon": true}`), set once per process with `set_options`.

Writes: on a local disk a file is written to a temporary name carrying the job token and renamed into place; on an
object store, where there is no rename, each file is one PUT under its final key. Either way no partial file is
ever visible under its final name. A failed write raises `WriteFault`, which names the cause and output.dir.
"""

from __future__ import annotations

import errno
import io
import json
import os
import posixpath
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, BinaryIO

import fsspec
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from batchvoc.errors import ConfigError

TEMP_MARK = ".partial-"
_OPTIONS: dict[str, Any] = {}
# botocore's Config for an S3 store while the checks before a job run (`checking`): one try, short waits, so that an
# endpoint that does not answer is named in seconds (closed port: 1.0 s for the whole command; a port that accepts
# and never replies: 7.1 s, a listing being two requests). s3fs's defaults (connect 5 s, read 15 s, botocore's 5
# tries, each inside s3fs's own 5 tries for timeouts) took 17.4 s and 833.5 s. Keys the user gives in
# io.storage_options' config_kwargs win; `user_agent_extra` keeps these clients apart from the job's own (fsspec
# caches a filesystem per options), whose reads and writes keep s3fs's and botocore's retries.
CHECK_CONFIG = {"connect_timeout": 2, "read_timeout": 3, "retries": {"total_max_attempts": 1},
                "user_agent_extra": "batchvoc-check"}  # fmt: skip
_CHECKING: ContextVar[bool] = ContextVar("batchvoc_storage_checking", default=False)
# errno -> (kind, the cause in words); these repeat on every try, so they are never retried
PERMANENT = {
    errno.ENOSPC: ("no_space", "no space left on the device"),
    errno.EDQUOT: ("quota", "disk quota exceeded"),
    errno.EACCES: ("permission", "permission denied"),
    errno.EPERM: ("permission", "operation not permitted"),
    errno.EROFS: ("read_only", "read-only file system"),
    errno.ENOTDIR: ("not_a_directory", "a path component is a file, not a folder"),
    errno.EISDIR: ("is_a_directory", "the target is a folder"),
    errno.EEXIST: ("not_a_directory", "a file (or a dangling link) stands where a folder should be"),
    errno.EFBIG: ("too_big", "file too large for the file system"),
    errno.EMLINK: ("too_many_links", "too many entries in a folder"),
}
# errno -> (kind, the cause in words) of faults that can be one path's own, repeating for that path only: another
# path's write in the same folder may succeed (sink.ShardSink.row_fault)
PATH_FAULTS = {
    errno.ENAMETOOLONG: ("name_too_long", "a file name or path too long for the file system"),
    **{code: PERMANENT[code] for code in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR)},
}
# Object-store clients' own errors, most not OSError (botocore's NoCredentialsError, EndpointConnectionError, ...),
# told apart by the package that raises them and their classes' names, so that batchvoc imports none of them
CLIENT_PACKAGES = {"botocore", "aiobotocore", "boto3", "aiohttp", "s3fs", "gcsfs", "google", "adlfs", "azure",
                   "huggingface_hub", "requests", "urllib3", "fsspec"}  # fmt: skip
NO_CREDENTIALS = {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError", "TokenRetrievalError",
                  "UnauthorizedSSOTokenError", "NoAuthTokenError", "DefaultCredentialsError", "RefreshError",
                  "ClientAuthenticationError", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                  "InvalidToken"}  # class names, and S3's error codes for keys it refuses  # fmt: skip
NO_CONNECTION = {"ConnectionError", "HTTPClientError", "ClientConnectionError", "ServerTimeoutError", "TimeoutError",
                 "TransportError", "gaierror"}  # fmt: skip


class WriteFault(OSError):
    """A write under output.dir failed; `str()` is a one-line reason naming the cause and output.dir.

    `permanent` is True where the same write will fail again (no space, permission, read-only file system,
    a file where a folder should be, quota): the job must not retry or re-vocode for it.
    """

    def __init__(self, reason: str, kind: str, permanent: bool, errno_: int | None = None):
        super().__init__(errno_, reason)
        self.reason, self.kind, self.permanent = reason, kind, permanent

    def __str__(self) -> str:
        return self.reason

    def __reduce__(self):  # survives pickling through Ray
        return (WriteFault, (self.reason, self.kind, self.permanent, self.errno))


def classify(err: BaseException, out_dir: str, target: str = "") -> WriteFault:
    """The WriteFault for an error raised while writing `target` under output.dir `out_dir`."""
    if isinstance(err, WriteFault):
        return err
    code = getattr(err, "errno", None)
    where = f" ({target})" if target else ""
    if isinstance(err, PermissionError) and code is None:
        code = errno.EACCES
    kind = access_kind(err)
    if kind == "credentials":  # before the errno: s3fs raises keys the store refuses as a PermissionError (EACCES)
        reason = f"cannot write to output.dir {out_dir}{where}: {describe(err, out_dir)}"
        return WriteFault(reason, kind, True, code)
    if code in PERMANENT:
        kind, cause = PERMANENT[code]
        reason = f"cannot write to output.dir {out_dir}: {cause}{where} [{errno.errorcode.get(code, code)}]"
        return WriteFault(reason, kind, True, code)
    if isinstance(err, FileNotFoundError):  # a missing bucket, or a folder removed under the job
        reason = f"cannot write to output.dir {out_dir}: it (or its bucket) does not exist{where}: {_line(err)}"
        return WriteFault(reason, "missing", True, code)
    if kind:  # no credentials or a refused option: the same on every try; the store not reached: perhaps a moment
        reason = f"cannot write to output.dir {out_dir}{where}: {describe(err, out_dir)}"
        return WriteFault(reason, kind, kind in ("credentials", "options"), code)
    name = errno.errorcode.get(code, type(err).__name__) if code else type(err).__name__
    return WriteFault(f"cannot write to output.dir {out_dir}{where}: {_line(err)} [{name}]", "other", False, code)


def _line(err: BaseException) -> str:
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return " ".join(str(text).split())


def is_store_error(err: BaseException) -> bool:
    """True for an error of reaching or using storage: an OSError, or an object-store client's own error (not
    an OSError for botocore's, e.g. NoCredentialsError, EndpointConnectionError)."""
    return (
        isinstance(err, OSError)
        or refused_option(err)
        or any(kind.__module__.split(".")[0] in CLIENT_PACKAGES for kind in type(err).__mro__)
    )


def from_client(err: BaseException) -> bool:
    """Whether err, or an error it was raised from, is an object-store client's own (CLIENT_PACKAGES' classes)."""
    kinds = (kind for cause in _causes(err) for kind in type(cause).__mro__)
    return any(kind.__module__.split(".")[0] in CLIENT_PACKAGES for kind in kinds)


def _causes(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def access_kind(err: BaseException) -> str:
    """What an error of any store's client (or its cause: s3fs turns a refused key into a PermissionError) says:
    `credentials` (none found, or the store refused the keys), `connection` (the store's endpoint not reached),
    `options` (the client refused an io.storage_options key), or "" (anything else)."""
    if refused_option(err):
        return "options"
    for cause in _causes(err):
        code = getattr(cause, "response", None)
        code = code.get("Error", {}).get("Code") if isinstance(code, dict) else None
        names = {kind.__name__ for kind in type(cause).__mro__}
        if code in NO_CREDENTIALS or names & NO_CREDENTIALS:
            return "credentials"
        if isinstance(cause, (ConnectionError, TimeoutError, socket.gaierror)) or names & NO_CONNECTION:
            return "connection"
    return ""


def describe(err: BaseException, url: str | Path = "") -> str:
    """One line for a storage error: its message and type, and for missing credentials or an endpoint not
    reached, what to check (for s3:// URLs, the AWS_* environment and io.storage_options by name)."""
    said = f"{_line(err)} [{type(err).__name__}]"
    s3 = str(url).startswith(("s3://", "s3a://"))
    kind = access_kind(err)
    if kind == "credentials":
        where = "the store's standard environment, or io.storage_options"
        if s3:
            where = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment, "
            where += "or key and secret in io.storage_options"
        return f"no usable credentials for the object store: {said}; check {where}"
    if kind == "options":
        return f"the store's client does not take an option given in io.storage_options: {said}"
    if kind == "connection":
        where = ("io.storage_options endpoint_url (or AWS_ENDPOINT_URL)" if s3 else
                 "the store's address (io.storage_options)")  # fmt: skip
        tried = ""
        if s3 and _CHECKING.get():
            config = {**CHECK_CONFIG, **(_OPTIONS.get("config_kwargs") or {})}
            tried = (f" (tried once, waiting {config['connect_timeout']} s to connect and {config['read_timeout']} s "
                     f"for an answer: io.storage_options config_kwargs sets them)")  # fmt: skip
        return (f"cannot connect to the object store: {said}; check {where}, and that it is up and reachable from "
                f"here{tried}")  # fmt: skip
    return said


@contextmanager
def reaching(key: str, url: str | Path | None) -> Iterator[None]:
    """Turn a storage error of the block (credentials, endpoint, a store's refusal) into a ConfigError naming
    `key` (input.manifest, output.dir) and `url`, in one line: for the steps before a job starts."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as err:
        if not is_store_error(err):
            raise
        raise ConfigError(key, f"{url}: {describe(err, url or '')}") from err


def refused_option(err: BaseException) -> bool:
    """Whether err is a TypeError raised inside an object-store client (CLIENT_PACKAGES): what a keyword it does not
    take does, passed on from io.storage_options at its first use (s3fs: `AioSession.__init__() got an unexpected
    keyword argument 'retries'`). Only while io.storage_options holds keys: without any, such a TypeError is a bug."""
    tb = err.__traceback__ if isinstance(err, TypeError) and _OPTIONS else None
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_globals.get("__name__", "") if tb is not None else ""
    return module.split(".")[0] in CLIENT_PACKAGES


def set_options(options: dict[str, Any] | None) -> None:
    """Process-wide fsspec keyword arguments (`io.storage_options`) for every URL opened after this call."""
    _OPTIONS.clear()
    _OPTIONS.update(options or {})


def is_url(spec: str | Path) -> bool:
    """True for an fsspec URL (`proto://...`) other than file://."""
    text = str(spec)
    return "://" in text and not text.startswith("file://")


def filesystem(spec: str | Path) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path within it) for a local path or URL; local paths come back absolute."""
    if not is_url(spec):
        text = str(spec).removeprefix("file://")
        return LocalFileSystem(), str(Path(text).expanduser().resolve())
    checked = _CHECKING.get() and str(spec).startswith(("s3://", "s3a://"))
    options = _OPTIONS
    if checked:
        options = {**_OPTIONS, "config_kwargs": {**CHECK_CONFIG, **(_OPTIONS.get("config_kwargs") or {})}}
    fs, path = fsspec.core.url_to_fs(str(spec), **options)
    if checked:
        fs.retries = 1  # s3fs's own tries around botocore's (its class attribute; 5): this check's client only
    return fs, path.rstrip("/")


@contextmanager
def checking() -> Iterator[None]:
    """S3 stores opened in this block (this thread) answer within CHECK_CONFIG's waits or fail, tried once: for
    the checks before a job, where a store that does not answer must be named at once, not after minutes of
    retries. The job's own reads and writes keep the client's retries."""
    token = _CHECKING.set(True)
    try:
        yield
    finally:
        _CHECKING.reset(token)


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def to_url(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The URL (or local path) for `path` on `fs`, as find/glob return it without a protocol."""
    return path if is_local(fs) else fs.unstrip_protocol(path)


def open_input(url: str | Path) -> BinaryIO:
    """A binary file object to read a local file or URL (caller closes it)."""
    fs, path = filesystem(url)
    return fs.open(path, "rb")


def parquet_file(url: str | Path, **options: Any) -> pq.ParquetFile:
    """A ParquetFile on a local path (read natively) or URL (read through fsspec); options: pq.ParquetFile's."""
    if not is_url(url):
        return pq.ParquetFile(str(url), **options)
    return pq.ParquetFile(open_input(url), **options)


def info(url: str | Path) -> dict[str, Any]:
    """fsspec's info for one file: size, and whatever version marks the store gives (mtime, ETag, ...)."""
    fs, path = filesystem(url)
    return fs.info(path)


class Store:
    """output.dir: a local folder or an object-store prefix, with the writes batchvoc needs.

    `token` (the job's) goes into temporary names so that a clean-up can tell this job's partial files apart.
    """

    def __init__(self, url: str | Path, token: str = ""):
        self.fs, self.root = filesystem(url)
        self.url = to_url(self.fs, self.root)
        self.local = is_local(self.fs)
        self.token = token

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def path(self, rel: str) -> str:
        """Full path (in the filesystem's terms) of `rel`, a '/'-separated name below the root."""
        return posixpath.join(self.root, rel) if not self.local else os.path.join(self.root, *rel.split("/"))

    def local_path(self, rel: str = "") -> Path:
        if not self.local:
            raise ValueError(f"{self.url} is not a local folder")
        return Path(self.path(rel)) if rel else Path(self.root)

    # ---- reading -------------------------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        self.fs.invalidate_cache(self.path(rel))  # other processes (the job's actors) write here too
        return self.fs.isfile(self.path(rel))

    def read_bytes(self, rel: str) -> bytes:
        return self.fs.cat_file(self.path(rel))

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel))

    def listing(self, prefix: str) -> set[str]:
        """Names (relative to `prefix`, '/'-separated) of the files below it, from one listing; no partials."""
        base = self.path(prefix)
        self.fs.invalidate_cache(base)  # listings are cached per process; the job's actors write elsewhere
        try:
            found = self.fs.find(base)
        except (FileNotFoundError, NotADirectoryError):
            return set()
        names = set()
        for full in found:
            rel = posixpath.relpath(str(full).replace(os.sep, "/"), base.replace(os.sep, "/"))
            if TEMP_MARK not in posixpath.basename(rel) and not rel.startswith(".."):
                names.add(rel)
        return names

    def entries(self, prefix: str = "") -> set[str]:
        """Names of the files and folders right below the root, or below `prefix` (one listing)."""
        base = self.path(prefix) if prefix else self.root
        self.fs.invalidate_cache(base)
        try:
            found = self.fs.ls(base, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return set()
        return {posixpath.basename(str(p).rstrip("/").replace(os.sep, "/")) for p in found}

    # ---- writing -------------------------------------------------------------------------------------
    def write_bytes(self, rel: str, data: bytes) -> None:
        """Put `data` under `rel`: temp-and-rename locally, one PUT on an object store; WriteFault on failure."""
        target = self.path(rel)
        try:
            if self.local:
                self._write_local(target, data)
            else:
                self.fs.pipe_file(target, data)
        except Exception as err:  # every store's errors become one classified WriteFault
            if not is_store_error(err):
                raise
            raise classify(err, self.url, rel) from err

    def write_with(self, rel: str, write: Callable[[BinaryIO], None]) -> None:
        """Call write(buffer) on an in-memory buffer, then write its bytes under `rel` (see write_bytes)."""
        buffer = io.BytesIO()
        write(buffer)
        self.write_bytes(rel, buffer.getvalue())

    def write_json(self, rel: str, payload: Any) -> None:
        self.write_bytes(rel, json.dumps(payload, indent=2, default=str).encode())

    def _write_local(self, target: str, data: bytes) -> None:
        folder, name = os.path.split(target)
        os.makedirs(folder, exist_ok=True)
        temp = os.path.join(folder, f".{name}{TEMP_MARK}{self.token}-{os.getpid()}-{threading.get_ident()}")
        try:
            with open(temp, "wb") as handle:
                handle.write(data)
            os.replace(temp, target)
        finally:
            if os.path.lexists(temp):
                os.unlink(temp)

    def remove(self, rel: str) -> None:
        try:
            self.fs.rm(self.path(rel), recursive=True)
        except FileNotFoundError:
            pass

    def remove_partials(self, prefix: str, any_job: bool = False, recursive: bool = True) -> int:
        """Delete temporary files below `prefix` left by this job's interrupted writes (by any job's, with
        `any_job`: only while holding the job lock); returns how many. Object stores have none."""
        if not self.local:
            return 0
        folder = Path(self.path(prefix)) if prefix else Path(self.root)
        if not folder.is_dir():
            return 0
        mark = TEMP_MARK if any_job else f"{TEMP_MARK}{self.token}-"
        removed = 0
        for path in folder.rglob(f"*{mark}*") if recursive else folder.glob(f"*{mark}*"):
            if path.is_file() and mark in path.name:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def check_writable(self) -> None:
        """WriteFault unless a file can be created (and removed) at the root."""
        probe = f".write-test{TEMP_MARK}{self.token or 'probe'}-{os.getpid()}"
        try:
            if self.local:
                os.makedirs(self.root, exist_ok=True)
            self.write_bytes(probe, b"")
            self.fs.rm(self.path(probe))
        except Exception as err:
            if not is_store_error(err):
                raise
            raise classify(err, self.url) from err
