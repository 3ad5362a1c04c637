"""Paired significance tests between methods: the tests, and which comparisons to run."""
