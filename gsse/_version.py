"""The one place the version lives (read by pyproject and ``gsse --version``)."""

__version__ = "0.1.0"
