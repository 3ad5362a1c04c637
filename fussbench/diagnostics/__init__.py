"""Diagnostics that use labels, never benchmark rows: ``probe``, the supervised linear
probe's ceiling of the frozen features (``fussbench probe``)."""
