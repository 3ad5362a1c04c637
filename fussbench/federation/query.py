"""A question an aggregator asks the clients during a round, and the answer's rules.

A :class:`Query` is self-describing: the named arrays and the small config that go down to
the clients, and the client-side code that answers it from the client's private
:class:`~fussbench.model.training.ClientData`. The in-process engine calls
:meth:`Query.answer` on each client directly; the Flower engine sends the query's type,
arrays and config in one message and the ClientApp rebuilds it (:func:`query_class`) and
answers. The answer is named arrays with exactly the keys the query declares
(:attr:`Query.answer_keys`), nothing else.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from fussbench.errors import FussbenchError
from fussbench.model.head import ModelArrays

if TYPE_CHECKING:
    from fussbench.model.training import ClientData

ConfigValue = int | float
"""A query's config value: a number (8 bytes on the wire)."""

CONFIG_VALUE_BYTES = np.dtype(np.int64).itemsize
"""Bytes of one config value on the wire (int64 or float64)."""

PACKAGE = "fussbench"
"""The only package a client rebuilds query classes from."""


class Query(ABC):
    """What the server sends to the clients that finished a round, and how they answer.

    Attributes:
        purpose: a short name of the question, prefixed to a client's failure reason
            (e.g. ``"scoring"``).
        answer_keys: the names of the arrays of an answer; an answer with other names is
            refused and the client left out, so nothing else leaves a client.
    """

    purpose: ClassVar[str]
    answer_keys: ClassVar[tuple[str, ...]]

    @abstractmethod
    def arrays(self) -> ModelArrays:
        """The named arrays sent to every client."""

    @abstractmethod
    def config(self) -> dict[str, ConfigValue]:
        """The numbers sent to every client besides the arrays."""

    @classmethod
    @abstractmethod
    def rebuild(cls, arrays: ModelArrays, config: Mapping[str, ConfigValue]) -> Query:
        """The query whose :meth:`arrays` and :meth:`config` these are (client side)."""

    @abstractmethod
    def answer(self, data: ClientData) -> ModelArrays:
        """The client's answer from its own data: arrays named :attr:`answer_keys`."""

    def nbytes(self) -> int:
        """Bytes of payload of the query: its arrays, and 8 per config value."""
        arrays = sum(value.nbytes for value in self.arrays().values())
        return arrays + CONFIG_VALUE_BYTES * len(self.config())

    @classmethod
    def type_name(cls) -> str:
        """``module:QualifiedName``, what :func:`query_class` resolves on a client."""
        return f"{cls.__module__}:{cls.__qualname__}"


def answer_problem(query: Query, answer: object) -> str | None:
    """Why ``answer`` is not an answer to ``query`` (None: it is): not named arrays, or
    names other than ``query.answer_keys``."""
    if not isinstance(answer, Mapping) or not all(
        isinstance(value, np.ndarray) for value in answer.values()
    ):
        return f"{query.purpose}: the answer is not named arrays"
    if set(answer) != set(query.answer_keys):
        return (
            f"{query.purpose}: the answer carries arrays {sorted(answer)}, expected "
            f"{sorted(query.answer_keys)}"
        )
    return None


def answer_nbytes(answer: ModelArrays) -> int:
    """Bytes of payload of an answer: its arrays."""
    return sum(value.nbytes for value in answer.values())


def query_class(type_name: str) -> type[Query]:
    """The :class:`Query` subclass named ``module:QualifiedName``, imported from the
    fussbench package only.

    Raises:
        FussbenchError: a name outside the fussbench package, a missing module or class,
            or a class that is not a Query.
    """
    module_name, _, qualname = type_name.partition(":")
    if module_name.split(".")[0] != PACKAGE or not qualname:
        raise FussbenchError(
            f"query type '{type_name}' refused: a client answers only query classes of the "
            f"{PACKAGE} package, named 'module:Class'"
        )
    try:
        found: object = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as error:
        raise FussbenchError(f"query type '{type_name}' not found: {error}") from None
    if not (isinstance(found, type) and issubclass(found, Query)):
        raise FussbenchError(f"query type '{type_name}' is not a fussbench Query")
    return found
