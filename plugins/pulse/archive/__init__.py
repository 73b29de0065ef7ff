"""Archives of warehouse data in object storage (issue 7): Parquet files written, verified and restored.

:mod:`pulse.archive.parquet` holds the engine (``write_archive``, ``verify_archive``, ``restore_archive``).
This package module stays empty on purpose: it imports nothing, so a DAG file may import names from the
package inside its task functions without paying for pyarrow or psycopg when the DAG is parsed.
"""
