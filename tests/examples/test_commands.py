"""Every example says, at its top, the one command that runs it."""

from __future__ import annotations

import pytest

from tests.examples.support import example_command
from tests.examples.support import example_names


@pytest.mark.parametrize("name", example_names())
def test_example_has_its_command_at_the_top(name: str) -> None:
    """The docstring's "Run it:" line is a command that names this example."""
    command = " ".join(example_command(name))
    assert f"examples.{name}:" in command or f"examples/{name}.py" in command
