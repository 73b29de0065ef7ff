"""Object storage helpers shared by archives (``pulse.archive``) and exports (``pulse.export``).

Both write through Airflow's ``ObjectStoragePath``: a local folder (``file://``) or S3 through the amazon
provider, chosen by an environment variable holding the root URL and another naming the ``aws`` connection.
Only the standard library is imported here: DAG files may import what imports this.

A local folder is one machine's: with an executor that runs tasks on several machines (Celery, Kubernetes,
Edge ...), an export or archive written there is invisible to the task that reads it next (restore, verify,
a partner's download) and a month's files end up spread over the workers' disks. :func:`root_from_env`
therefore refuses a ``file://`` root unless Airflow's executor runs tasks on the scheduler's machine only
(``LocalExecutor``), or ``PULSE_SHARED_FILESYSTEM=1`` says that the folder is on a filesystem every worker
mounts (NFS, EFS ...). docs/executors.md.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

LOCAL_PROTOCOLS = frozenset({"file", "local", ""})
#: Executors that run every task on the scheduler's machine: a local folder is shared by all tasks there.
ONE_MACHINE_EXECUTORS = frozenset({"LocalExecutor", "SequentialExecutor", "DebugExecutor"})
#: ``1`` when a ``file://`` root is on a filesystem every worker mounts.
SHARED_FS_ENV = "PULSE_SHARED_FILESYSTEM"


def configured_executors() -> list[str]:
    """The class names of Airflow's ``[core] executor`` (a list, entries ``alias:module.Class`` or names)."""
    from airflow.configuration import conf

    raw = str(conf.get("core", "executor", fallback="LocalExecutor") or "LocalExecutor")
    return [entry.strip().rpartition(":")[2].rpartition(".")[2] for entry in raw.split(",") if entry.strip()]


def check_local_root(url_var: str, url: str) -> None:
    """Fail the task when ``url`` is a local folder and tasks may run on other machines: an
    ``AirflowFailException`` (no retries: a retry cannot fix the configuration), naming the fix."""
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme not in LOCAL_PROTOCOLS or os.environ.get(SHARED_FS_ENV, "").strip() == "1":
        return
    spread = [name for name in configured_executors() if name not in ONE_MACHINE_EXECUTORS]
    if spread:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(
            f"{url_var}={url} is a folder on this worker's disk, but Airflow runs tasks with {', '.join(spread)}: "
            "tasks on other workers would not see what this one writes there. Use shared object storage "
            f"({url_var}=s3://bucket/prefix with {url_var.removesuffix('_URL')}_CONN_ID naming an aws "
            f"connection; docs/executors.md), or set {SHARED_FS_ENV}=1 if that folder is on a filesystem "
            "every worker mounts."
        )


def root_from_env(url_var: str, conn_id_var: str) -> ObjectStoragePath | None:
    """The root at ``$url_var`` (with the connection ``$conn_id_var`` when set); ``None`` when unset.

    Fails the task for a local folder when the executor runs tasks on several machines
    (:func:`check_local_root`)."""
    from airflow.sdk import ObjectStoragePath

    url = os.environ.get(url_var, "").strip()
    if not url:
        return None
    check_local_root(url_var, url)
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
