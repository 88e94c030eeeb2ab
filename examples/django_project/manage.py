#!/usr/bin/env python
"""Django's command-line utility for this example project.

Run it:    gsse run project.wsgi:application  (from examples/django_project,
           after `python manage.py migrate`)
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
