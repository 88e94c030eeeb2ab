"""The WSGI entry point, wrapped once for streaming.

Run it:    gsse run project.wsgi:application
     or:   gunicorn -k gevent project.wsgi:application
(both from examples/django_project, after `python manage.py migrate`)
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

import gsse

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

# The one line: keep-alive pings, limits and a graceful shutdown for the
# project's streams under any gevent host.
application = gsse.SSEMiddleware(get_wsgi_application())
