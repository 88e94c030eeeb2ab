"""``python -m gsse``: the same as the ``gsse`` command."""

from .cli import main

if __name__ == "__main__":
    main()
