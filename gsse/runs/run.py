"""Run: what :meth:`gsse.Runs.start` returns."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .store import RunInfo

if TYPE_CHECKING:
    from .runs import Runs


class Run:
    """A started run: its :attr:`id` is what followers and cancels name.

    .. versionadded:: 0.3
    """

    __slots__ = ("id", "_runs")

    def __init__(self, run_id: str, runs: Runs) -> None:
        #: Unguessable and URL-safe (``secrets.token_urlsafe``).
        self.id = run_id
        self._runs = runs

    def get(self) -> RunInfo | None:
        """As ``runs.get(run.id)``."""
        return self._runs.get(self.id)

    def cancel(self) -> bool:
        """As ``runs.cancel(run.id)``."""
        return self._runs.cancel(self.id)

    def __repr__(self) -> str:
        return f"<Run {self.id}>"
