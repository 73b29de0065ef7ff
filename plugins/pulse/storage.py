"""Object storage helpers shared by archives (``pulse.archive``) and exports (``pulse.export``).

Both write through Airflow's ``ObjectStoragePath``: a local folder (``file://``) or S3 through the amazon
provider, chosen by an environment variable holding the root URL and another naming the ``aws`` connection.
Only the standard library is imported here: DAG files may import what imports this.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

LOCAL_PROTOCOLS = frozenset({"file", "local", ""})


def root_from_env(url_var: str, conn_id_var: str) -> ObjectStoragePath | None:
    """The root at ``$url_var`` (with the connection ``$conn_id_var`` when set); ``None`` when unset."""
    from airflow.sdk import ObjectStoragePath

    url = os.environ.get(url_var, "").strip()
    if not url:
        return None
    conn_id = os.environ.get(conn_id_var, "").strip() or None
    return ObjectStoragePath(url, conn_id=conn_id) if conn_id else ObjectStoragePath(url)


def storage_url(path: Any) -> str:
    """A storage location as a plain URL for people and partners (``s3://bucket/key``, ``file:///dir``).

    ``str(ObjectStoragePath)`` carries the Airflow connection id (``s3://conn_id@bucket/key``); people have
    no use for it. Takes an ``ObjectStoragePath`` or such a string.
    """
    if hasattr(path, "protocol") and hasattr(path, "path"):  # an ObjectStoragePath
        prefix = "file://" if path.protocol in ("file", "local") else f"{path.protocol}://"
        return prefix + str(path.path)
    scheme, sep, rest = str(path).partition("://")
    if not sep or scheme in ("file", "local"):
        return str(path)
    netloc, slash, tail = rest.partition("/")
    return f"{scheme}://{netloc.rpartition('@')[2]}{slash}{tail}"


class HashingSink:
    """A write-only file that hashes and counts what passes through it to ``raw``; pyarrow accepts it.

    Closing it does not close ``raw``: its owner does (committing the object).
    """

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self._sha = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._sha.update(chunk)
        self.raw.write(chunk)
        self.size += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()
