"""How a valuation run ended: one closed set of states, with the words each front end shows.

``result.meta["ended"]`` holds one of these (as its string value, so saved results and run
records stay plain JSON); the progress view, the panel, the magic and the cache listing all
read their words from here, so a run "stopped" in one place is never "cancelled" in another.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["RunEnd"]


class RunEnd(str, Enum):
    """How a run ended. A ``str`` enum: ``RunEnd.DONE == "done"`` and it is JSON as is."""

    DONE = "done"
    TIME_LIMIT = "time limit"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: object) -> RunEnd | None:
        """The member for a stored value (``"done"``...), None for anything else."""
        try:
            return cls(value)
        except ValueError:
            return None

    @property
    def partial(self) -> bool:
        """Whether the result is partial: the run ended before its criterion said so."""
        return self in (RunEnd.STOPPED, RunEnd.INTERRUPTED, RunEnd.ERROR)

    @property
    def status_text(self) -> str:
        """The progress view's status line."""
        return _STATUS[self]

    @property
    def sentence(self) -> str:
        """The start of a sentence about the run (the panel's message: "Done: values of...")."""
        return _SENTENCE[self]

    @property
    def style(self) -> str:
        """ipywidgets' bar style for a run that ended this way."""
        return _STYLE[self]


_STATUS = {
    RunEnd.DONE: "Done",
    RunEnd.TIME_LIMIT: "Done: time limit reached",
    RunEnd.STOPPED: "Stopped: partial result kept",
    RunEnd.INTERRUPTED: "Interrupted: partial result kept",
    RunEnd.ERROR: "Failed: the run raised an error",
}
_SENTENCE = {
    RunEnd.DONE: "Done",
    RunEnd.TIME_LIMIT: "Done at the time limit",
    RunEnd.STOPPED: "Stopped early (partial result)",
    RunEnd.INTERRUPTED: "Interrupted (partial result)",
    RunEnd.ERROR: "Failed",
}
_STYLE = {
    RunEnd.DONE: "success",
    RunEnd.TIME_LIMIT: "success",
    RunEnd.STOPPED: "warning",
    RunEnd.INTERRUPTED: "warning",
    RunEnd.ERROR: "danger",
}
