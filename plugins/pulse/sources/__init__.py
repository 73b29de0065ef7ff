"""Per-source parsers (pure functions) and the source registry in :mod:`pulse.sources.base`."""
