"""Studies that train many federate runs outside the DVC pipeline, and what runs them:

- ``scheduler``: federate runs ``workers`` at a time, in separate processes;
- ``prepare``: download, cache the features of and partition a setup that lacks them;
- ``trainer``: the two together, as a study's way to get its runs done;
- ``overrides``: the params overrides of a comparison cell (``--method``);
- ``convergence_runs`` and ``convergence``: global mIoU against local steps
  (``fussbench convergence``);
- ``k_sweep``: mIoU against a fixed number of clusters (``fussbench k-sweep``).

The federate, download, features and partition steps are the pipeline's stages, which
``fussbench`` never imports: the CLI passes them in (:class:`trainer.Trainer`).
"""
