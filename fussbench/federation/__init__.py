"""Aggregators (pure functions on arrays) and the federated round loop."""
