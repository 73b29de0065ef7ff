"""One module per source: its parser (pure functions) and its declaration ``SPEC`` (:mod:`pulse.sources.spec`)."""
