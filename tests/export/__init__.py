"""Tests of the mart exports (writers, manifests) and the signed webhooks."""
