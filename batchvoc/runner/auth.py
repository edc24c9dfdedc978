"""Ray token authentication (Ray 2.52+; on by default for local clusters since 2.59), as Ray documents it.

A cluster started with RAY_AUTH_MODE=token accepts only clients that send its token. A client finds the token in
RAY_AUTH_TOKEN, in the file RAY_AUTH_TOKEN_PATH names, or in ~/.ray/auth_token (`ray get-auth-token` on the head
prints it), and sends it only when RAY_AUTH_MODE=token is set in its own environment. So:
- joining a cluster (ray://host:port, `auto`, `jobs/submit.py`): with RAY_AUTH_MODE unset and a token available,
  token mode is turned on for this process (Ray itself does so only for `auto`, with a banner);
- a local cluster this job starts gets a fresh token of its own in the environment of the processes it starts:
  nothing is written to ~/.ray, no banner is printed, and two jobs on one machine never share a token.
`restore()` puts the environment back when the job disconnects (the next job of a sweep starts clean).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

MODE, TOKEN, TOKEN_PATH = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_FILE = Path("~/.ray/auth_token")
HOW = (
    "set RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH to a file holding it) to the token of the cluster's head "
    "(`ray get-auth-token` there prints it), with RAY_AUTH_MODE=token"
)
_saved: dict[str, str | None] = {}


def token_available() -> bool:
    """Whether a client here would find a token: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token."""
    if os.environ.get(TOKEN):
        return True
    if os.environ.get(TOKEN_PATH):
        return Path(os.environ[TOKEN_PATH]).expanduser().is_file()
    return DEFAULT_TOKEN_FILE.expanduser().is_file()


def for_existing_cluster() -> None:
    """Send the token to a cluster we join: token mode on when RAY_AUTH_MODE is unset and a token is found."""
    if os.environ.get(MODE) is None and token_available():
        _set(MODE, "token")


# One token for every local cluster of this process: Ray caches the token it loaded per process, so a sweep's
# second local cluster with a fresh token would refuse this very process ("Failed to start GCS").
_PROCESS_TOKEN = secrets.token_hex(32)


def for_local_cluster() -> None:
    """A local cluster with token authentication and a fresh token of its own (unless the user chose otherwise)."""
    mode = os.environ.get(MODE)
    if mode is None:
        _set(MODE, "token")
    if (mode is None or mode.lower() == "token") and not os.environ.get(TOKEN) and not os.environ.get(TOKEN_PATH):
        _set(TOKEN, _PROCESS_TOKEN)


def restore() -> None:
    """Undo what for_existing_cluster / for_local_cluster set."""
    for name, value in _saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if _saved:
        _saved.clear()
        _refresh()


def _set(name: str, value: str) -> None:
    _saved.setdefault(name, os.environ.get(name))
    os.environ[name] = value
    _refresh()


def _refresh() -> None:
    """Ray caches its config (the auth mode among it) per process; re-read it from the environment."""
    try:
        from ray._raylet import Config

        Config.initialize("")
    except (ImportError, AttributeError):  # pragma: no cover - a Ray without token authentication
        pass
