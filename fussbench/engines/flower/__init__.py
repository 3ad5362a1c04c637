"""The ``flower`` engine: federation on Flower's deployment runtime (``flwr==1.42``).

A SuperLink, one SuperNode per client (each reading only its own client's data folder)
and the run submitted with ``flwr run``. Modules, one job each:

- :mod:`.codec`: what crosses the wire, as Flower records;
- :mod:`.site`: one client's data folder (its manifest and its rows of the feature cache);
- :mod:`.site_cache`: a site caching its own client's raw images itself;
- :mod:`.runconfig`: the params and the server's job, as handed to the Flower apps;
- :mod:`.strategy`: the Flower strategy that calls fussbench's aggregators;
- :mod:`.secure` / :mod:`.secure_sum`: secure aggregation (Flower's SecAgg+) and what it
  sums;
- :mod:`.server_app` / :mod:`.client_app`: the ServerApp and the ClientApp;
- :mod:`.launcher`: starting and always stopping the Flower processes on 127.0.0.1;
- :mod:`.engine`: the entry point ``stages/federate.py`` calls.

Flower reads these variables when it is imported, so they are set here, before any
module of this package imports ``flwr``: no telemetry, no update check.
"""

import os

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
