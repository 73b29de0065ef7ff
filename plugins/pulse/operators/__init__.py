"""Generic operators shared by every source: extract pages to raw, load raw to core."""
