# Astro Runtime for Airflow 3.3 (Runtime tags are <airflow major>.<minor>-<patch>; see AIRFLOW3.md §11).
# The image installs requirements.txt on build; requirements.lock pins the exact versions used in CI.
FROM astrocrpublic.azurecr.io/runtime:3.3-2
