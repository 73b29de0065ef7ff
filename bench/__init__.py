"""Benchmarks: `make bench` runs them all and prints measured ratios."""
