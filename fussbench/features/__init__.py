"""Frozen backbones and the on-disk dense-feature cache."""
