"""Analyses run after profiles and runs have finished, outside the DVC pipeline:

- ``versus``: two profiles' results paired by setup and seed (``fussbench versus``);
- ``winners``: which candidate fedcc_auto chose each round (``fussbench winners``);
- ``cluster_counts``: each client's and the global K per round (``fussbench cluster-counts``);
- ``k_sweep``: mIoU against a fixed K, auto runs marked (``fussbench k-sweep``);
- ``crf_effect``: saved models scored with and without dense CRF (``fussbench crf-effect``);
- ``flip_effect``: saved models scored with and without flip averaging
  (``fussbench flip-effect``);
- ``rescoring``: what the two share (saved models, the check against the record, the table).
"""
