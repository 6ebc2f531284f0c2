"""Conformance tests against third-party corpora in `../shared/corpora` (skipped when absent)."""
