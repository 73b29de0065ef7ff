"""Keyed pseudonyms for author handles.

Handles are replaced by ``HMAC-SHA256(key, "<source>:<handle>")`` before anything leaves ``raw``. The key comes
from ``PULSE_PSEUDONYM_KEY`` or from the password of the Airflow connection ``pulse_pseudonym``; without one
the pipeline refuses to load rather than store handles in clear or under a guessable key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from functools import lru_cache

PSEUDONYM_CONN_ID = "pulse_pseudonym"


class MissingPseudonymKeyError(RuntimeError):
    """No pseudonymisation key is configured."""


@lru_cache(maxsize=4)
def _key_from_connection(conn_id: str) -> bytes:
    from airflow.sdk import BaseHook

    try:
        password = BaseHook.get_connection(conn_id).password
    except Exception as exc:  # the connection is missing: say what to set
        raise MissingPseudonymKeyError(
            f"no pseudonymisation key: set PULSE_PSEUDONYM_KEY or the password of connection '{conn_id}'"
        ) from exc
    if not password:
        raise MissingPseudonymKeyError(f"connection '{conn_id}' has an empty password (the pseudonym key)")
    return password.encode()


def pseudonym_key(conn_id: str = PSEUDONYM_CONN_ID) -> bytes:
    """Return the pseudonymisation key (environment first, then the connection)."""
    env = os.environ.get("PULSE_PSEUDONYM_KEY")
    if env:
        return env.encode()
    return _key_from_connection(conn_id)


def make_pseudonymizer(source: str, key: bytes | None = None) -> Callable[[str | None], str | None]:
    """Return a function mapping a handle of ``source`` to its stable pseudonym (``None`` stays ``None``)."""
    secret = key if key is not None else pseudonym_key()

    def pseudonymize(handle: str | None) -> str | None:
        if handle is None or handle == "":
            return None
        digest = hmac.new(secret, f"{source}:{handle}".encode(), hashlib.sha256).hexdigest()
        return digest[:32]

    return pseudonymize
