"""Cluster-to-class matching, segmentation metrics and statistics."""
