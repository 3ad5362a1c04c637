"""Are the committed reports still what the locks say they are? (``fussbench verify``)

- ``lock``: the reporting stages' outputs and dependencies against ``dvc.lock``;
- ``profiles``: a profile folder (``reports/paper/``) against the experiment lock it keeps;
- ``tables``: ``results.csv`` and the main table against the runs they were built from.
"""
