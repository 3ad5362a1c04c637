"""Pipeline stages: each reads params and paths, calls the library, writes its outputs.

The ``fussbench`` CLI exposes one command per stage; ``dvc.yaml`` runs those commands.
"""
