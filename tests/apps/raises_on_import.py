"""An app module that fails while importing (gsse run exits with 1)."""

raise RuntimeError("this module fails on import on purpose")
