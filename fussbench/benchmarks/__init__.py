"""Timing harnesses for ``fussbench bench``: they may reach every package (backbone,
cache, client), so that the packages they time never reach each other."""
