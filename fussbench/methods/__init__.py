"""Every method fussbench knows, and what each one means (see :mod:`.registry`).

Importing this package registers the built-in methods (:mod:`.catalog`). It imports no
numpy, torch or scikit-learn, so params, statistics and reports can read it cheaply.
"""

from fussbench.methods import catalog
from fussbench.methods.registry import (
    STRUCTURAL_KEYS,
    WEIGHTINGS,
    Knob,
    Method,
    MethodSpec,
    candidate_names,
    get_spec,
    knobs,
    names,
    parse_candidate,
    parse_method,
    register,
    specs,
    unregister,
)

__all__ = [
    "STRUCTURAL_KEYS",
    "WEIGHTINGS",
    "Knob",
    "Method",
    "MethodSpec",
    "candidate_names",
    "catalog",
    "get_spec",
    "knobs",
    "names",
    "parse_candidate",
    "parse_method",
    "register",
    "specs",
    "unregister",
]
