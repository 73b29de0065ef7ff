"""Exports of the analyst marts for analysts and partners (issue 7).

``writers``: one mart, one UTC day, to CSV, JSON Lines and Parquet in object storage (a local folder or S3
through Airflow's ``ObjectStoragePath``) with a ``manifest.json`` written last. ``webhooks``: subscribers,
HMAC-SHA256 signatures and deliveries with retries and backoff. Partner-facing documentation:
``docs/exports.md``. Nothing here imports pyarrow, psycopg or requests at import time, so DAG files may import
these modules cheaply (they call them inside tasks).
"""
