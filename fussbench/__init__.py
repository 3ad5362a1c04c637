"""fussbench: a reproducible benchmark for Federated Unsupervised Semantic Segmentation."""

__version__ = "0.1.0"
