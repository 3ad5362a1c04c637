"""Datasets, their download and validation, and client partitions."""
