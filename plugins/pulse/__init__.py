"""Pulse: hooks, operators, parsers and warehouse code shared by the DAGs in ``dags/``.

The package lives in ``plugins/`` because Airflow puts that folder on ``sys.path`` for every component;
``plugins/.airflowignore`` keeps the plugin manager from importing it at start-up.
"""
