"""Client-level differential privacy for the federation (``privacy:`` in params, off by
default; the page is ``docs/privacy.md``).

The privacy unit is a client: all of one client's images. Modules, one job each:

- :mod:`.clipping`: each block of a client's update bounded in L2 norm;
- :mod:`.sampling`: which clients take part in a round (Poisson sampling, seeded);
- :mod:`.mechanism`: the Gaussian noise, on the client (``local``) or on the server's sum
  (``central``), the same functions on both engines;
- :mod:`.accounting`: ε from dp-accounting's Rényi accountant, and σ for a target ε.

Papers:
    - DP-FedAvg: McMahan, Ramage, Talwar and Zhang, "Learning Differentially Private
      Recurrent Language Models", ICLR 2018 (arXiv 1710.06963).
    - Rényi DP: Mironov, "Rényi Differential Privacy", CSF 2017 (arXiv 1702.07476); the
      sampled Gaussian mechanism: Mironov, Talwar and Zhang, arXiv 1908.10530 (2019).
"""
