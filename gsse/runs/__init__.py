"""Resumable runs: see :class:`gsse.Runs` and docs/runs.md."""

from .run import Run as Run
from .runs import Runs as Runs
from .store import RunInfo as RunInfo
from .writer import RunLimitExceeded as RunLimitExceeded
from .writer import RunWriter as RunWriter

__all__ = ["Run", "RunInfo", "RunLimitExceeded", "RunWriter", "Runs"]
