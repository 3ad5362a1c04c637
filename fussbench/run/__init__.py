"""One run of the federate stage (one method, one seed): its inputs, its round loop on an
engine, and the files it writes (``metrics.json``, ``rounds.csv``, ``images.csv``,
``model.npz``, the compact summary DVC experiments compare)."""
