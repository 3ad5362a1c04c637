"""Value rules for params, declared beside the field they constrain.

A rule is a small object with :meth:`~Rule.problem`, which says what is wrong with a value
(None: nothing). The params parser (:mod:`fussbench.params`) reads each field's rule from
its dataclass metadata (``field(default=..., metadata=rule(Interval(int, 1)))``, in the way
scikit-learn's ``_parameter_constraints`` sits beside an estimator's parameters); the method
registry (:mod:`fussbench.methods`) declares an aggregator knob's rule on the knob. Either
way the error names the param, the bad value and what is valid, in one line.

This module imports nothing but the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from fussbench.errors import FussbenchError

RULE = "rule"
"""The dataclass-metadata key of a field's rule."""


class Rule(Protocol):
    """What a value must satisfy."""

    def problem(self, value: Any) -> str | None:
        """Why ``value`` breaks the rule, as the end of "must ..." (None: it does not)."""


@dataclass(frozen=True)
class Interval:
    """A number of ``kind`` within [low, high] (None: unbounded on that side).

    ``closed``: which ends belong to the interval: ``"both"`` (default), ``"left"``,
    ``"right"`` or ``"neither"``.
    """

    kind: type
    low: float | None = None
    high: float | None = None
    closed: Literal["both", "left", "right", "neither"] = "both"

    def problem(self, value: Any) -> str | None:
        """``"be an integer >= 1"`` and the like when ``value`` is outside (or no number)."""
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or (self.kind is int and not isinstance(value, int)):
            return f"be {self.describe()}"
        if isinstance(value, float) and math.isnan(value):
            return f"be {self.describe()}"
        low_ok = self.low is None or (
            value >= self.low if self.closed in ("both", "left") else value > self.low
        )
        high_ok = self.high is None or (
            value <= self.high if self.closed in ("both", "right") else value < self.high
        )
        return None if low_ok and high_ok else f"be {self.describe()}"

    def describe(self) -> str:
        """``"an integer >= 1"``, ``"a number in [0, 1)"``, ..."""
        noun = "an integer" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            left = "[" if self.closed in ("both", "left") else "("
            right = "]" if self.closed in ("both", "right") else ")"
            return f"{noun} in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            sign = ">=" if self.closed in ("both", "left") else ">"
            return f"{noun} {sign} {self.low:g}"
        if self.high is not None:
            sign = "<=" if self.closed in ("both", "right") else "<"
            return f"{noun} {sign} {self.high:g}"
        return noun


@dataclass(frozen=True)
class OneOf:
    """One of ``choices`` (for a list-valued field, see :class:`Each`)."""

    choices: Sequence[Any]

    def problem(self, value: Any) -> str | None:
        """``"be one of a, b"`` unless ``value`` is a choice."""
        if value in self.choices:
            return None
        return "be one of " + ", ".join(str(choice) for choice in self.choices)


@dataclass(frozen=True)
class Each:
    """Every item of a list satisfies ``rule``; with ``non_empty``, there is at least one."""

    rule: Rule
    non_empty: bool = False

    def problem(self, value: Any) -> str | None:
        """The first item's problem, prefixed by its position."""
        if self.non_empty and not value:
            return "list at least one value"
        for index, item in enumerate(value):
            problem = self.rule.problem(item)
            if problem is not None:
                return f"have every item {problem} (item {index} is {item!r})"
        return None


@dataclass(frozen=True)
class OrNone:
    """None, or a value that satisfies ``rule``."""

    rule: Rule

    def problem(self, value: Any) -> str | None:
        """``rule``'s problem with ``or be null`` added."""
        if value is None:
            return None
        problem = self.rule.problem(value)
        return None if problem is None else f"{problem}, or be null"


@dataclass(frozen=True)
class Check:
    """Any test: ``test(value)`` is true; ``text`` completes "must ..." when it is not."""

    test: Callable[[Any], bool]
    text: str

    def problem(self, value: Any) -> str | None:
        """``text`` unless ``test(value)``."""
        return None if self.test(value) else self.text


def rule(value_rule: Rule) -> Mapping[str, Rule]:
    """Dataclass field metadata carrying ``value_rule``."""
    return {RULE: value_rule}


def enforce(value: Any, value_rule: Rule, param: str, source: str = "params") -> None:
    """Raise one line naming ``param``, the bad ``value`` and what is valid.

    Raises:
        FussbenchError: ``"<source>: <param> must <problem>, got <value>"``.
    """
    problem = value_rule.problem(value)
    if problem is not None:
        raise FussbenchError(f"{source}: {param} must {problem}, got {value!r}")
