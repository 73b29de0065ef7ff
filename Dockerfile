# Astro Runtime for Airflow 3.3 (Runtime tags are <airflow major>.<minor>-<patch>; see AIRFLOW3.md §11).
# Its Python: 3.12, Astro Runtime's default since 11.4 (not checked on this tag without Docker: `docker run --rm
# <image> python --version`); requirements-image.lock is the tested set resolved for it (docs/deploy.md).
# The image's ONBUILD steps run first: packages.txt (OS packages: none), requirements.txt (exact pins, installed
# on top of the image's Airflow and providers), then the project is copied to /usr/local/airflow as user astro.
FROM astrocrpublic.azurecr.io/runtime:3.3-2
# Install the project itself, editable and without dependencies, so that Airflow discovers Pulse's provider
# entry point (pyproject.toml) and the UI offers the pulse_* connection types with their Test button
# (docs/connections.md). Editable: the code stays the one copy in plugins/pulse (bind-mounted by
# `astro dev start`), nothing is copied into site-packages. pip's build leaves plugins/pulse.egg-info behind, a
# second copy of the metadata on sys.path: removed (the installed dist-info is the one that counts).
# As root, like the image's own requirements step (site-packages is not the astro user's), then back to astro.
USER root
RUN pip install --no-cache-dir --no-deps -e /usr/local/airflow \
    && rm -rf /usr/local/airflow/plugins/pulse.egg-info
USER astro
