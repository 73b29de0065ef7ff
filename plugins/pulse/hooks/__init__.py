"""One hook per external system: ``<System>Hook`` in ``hooks/<system>.py``."""
