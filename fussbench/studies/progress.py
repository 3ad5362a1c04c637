"""A long study's progress: after each finished run, one line saying how many of its runs
are done and about how long the rest will take.

A line rather than a bar: the runs' workers print their rounds to the same stream, and a
study of hours is usually followed in a log file. The estimate assumes the runs still to
go take as long, on average, as those done so far (the workers included):

    left = elapsed / done · (total − done)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


def duration(seconds: float) -> str:
    """``seconds`` for a person, rounded to the unit shown last: "42 s", "7 min 05 s" or,
    from an hour on, "3 h 12 min"."""
    whole = max(int(round(seconds)), 0)
    if whole >= 3600:
        hours, minutes = divmod(int(round(whole / 60)), 60)
        return f"{hours} h {minutes:02d} min"
    minutes, secs = divmod(whole, 60)
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


@dataclass
class Progress:
    """Counts a study's finished runs and says where it stands after each.

    Attributes:
        total: runs this call trains.
        say: prints one line.
        clock: seconds from a fixed point (``time.monotonic``; a test passes its own).
    """

    total: int
    say: Callable[[str], None]
    clock: Callable[[], float] = time.monotonic
    done: int = field(default=0, init=False)
    started: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def line(self) -> str:
        """Where the study stands, e.g. "runs: 3 of 12 done in 15 min 00 s, about
        45 min 00 s to go at this pace"."""
        elapsed = self.clock() - self.started
        head = f"runs: {self.done} of {self.total} done in {duration(elapsed)}"
        if self.done == 0 or self.done >= self.total:
            return head
        left = elapsed / self.done * (self.total - self.done)
        return f"{head}, about {duration(left)} to go at this pace"

    def after(
        self, finished: Callable[[dict[str, object]], None]
    ) -> Callable[[dict[str, object]], None]:
        """``finished`` followed by counting the run and saying :meth:`line`."""

        def report(metrics: dict[str, object]) -> None:
            finished(metrics)
            self.done += 1
            self.say(self.line())

        return report
