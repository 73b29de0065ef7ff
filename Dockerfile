# Astro Runtime for Airflow 3.3 (Runtime tags are <airflow major>.<minor>-<patch>; see AIRFLOW3.md §11).
# The image installs requirements.txt on build; requirements.lock pins the exact versions used in CI.
FROM astrocrpublic.azurecr.io/runtime:3.3-2
# The Runtime's build steps have installed requirements.txt and copied this project to /usr/local/airflow.
# Install the project itself, editable and without dependencies, so that Airflow discovers Pulse's provider
# entry point (pyproject.toml) and the UI offers the pulse_* connection types with their Test button
# (docs/connections.md). Editable: the code stays the one copy in plugins/pulse (bind-mounted by
# `astro dev start`), nothing is copied into site-packages. pip's build leaves plugins/pulse.egg-info behind, a
# second copy of the metadata on sys.path: removed (the installed dist-info is the one that counts).
RUN pip install --no-cache-dir --no-deps -e /usr/local/airflow \
    && rm -rf /usr/local/airflow/plugins/pulse.egg-info
