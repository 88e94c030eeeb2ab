"""An app module that imports a module that does not exist (exit 1, not 2)."""

import gsse_no_such_dependency  # noqa: F401

app = None
