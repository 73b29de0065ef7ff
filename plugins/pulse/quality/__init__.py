"""Data quality: declarative checks (include/quality/checks.yaml) run by the ``quality`` DAG."""
