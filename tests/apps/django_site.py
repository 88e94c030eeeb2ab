"""A one-file Django site for tests/test_django.py: settings, URLs and views.

``DJANGO_SETTINGS_MODULE=tests.apps.django_site``. The middleware list is a
real project's (GZip, ConditionalGet, Common, sessions, CSRF, auth); the
database is a fresh SQLite file per process.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

from django.http import HttpRequest
from django.http import HttpResponse
from django.urls import path

import gsse
import gsse.django

SECRET_KEY = "tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.gzip.GZipMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.http.ConditionalGetMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = __name__
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(tempfile.mkdtemp(prefix="gsse-django-"), "db.sqlite3"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

broker = gsse.Broker.from_url("memory://", history=10)
runs = gsse.Runs(broker, ttl=60)

#: What the callbacks saw, for the tests to inspect.
seen: dict[str, Any] = {}


def ticks(request: HttpRequest) -> HttpResponse:
    count = int(request.GET.get("n", "3"))

    def tick(writer: gsse.SSEWriter) -> None:
        seen["ticks ran"] = True
        with writer:
            for i in range(count):
                writer.send_event(f"tick {i}", id=str(i))
                time.sleep(0.01)

    return gsse.django.stream(tick, headers={"X-Stream": "ticks"})


def sign_in(request: HttpRequest) -> HttpResponse:
    from django.contrib.auth import login
    from django.contrib.auth.models import User

    user, _ = User.objects.get_or_create(username=request.GET["name"])
    login(request, user)
    request.session["colour"] = request.GET.get("colour", "blue")
    return HttpResponse("signed in\n")


def whoami(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return HttpResponse("sign in first\n", status=403)
    name = request.user.get_username()  # read in the view
    colour = request.session["colour"]

    def greet(writer: gsse.SSEWriter) -> None:
        with writer:
            writer.send_event({"user": name, "colour": colour}, event="hello")

    return gsse.django.stream(greet)


def db_stream(request: HttpRequest) -> HttpResponse:
    blocking = request.GET.get("blocking") == "1"

    def query(writer: gsse.SSEWriter) -> None:
        from django.contrib.auth.models import User
        from django.db import connections

        with writer:
            count = User.objects.count()
            wrapper = connections["default"]  # this greenlet's (or thread's)
            seen["connection"] = wrapper
            seen["open_in_callback"] = wrapper.connection is not None
            writer.send_event({"users": count})

    return gsse.django.stream(query, blocking=blocking)


def news(request: HttpRequest) -> HttpResponse:
    snapshot = request.GET.get("snapshot") == "1"
    return gsse.django.subscribe(broker, "news", ping=0, snapshot=snapshot)


def publish(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponse(status=405)
    event_id = broker.publish("news", request.POST["text"], event="headline")
    return HttpResponse(event_id)


def follow_run(request: HttpRequest, run_id: str) -> HttpResponse:
    return gsse.django.follow(runs, run_id, ping=0)


def page(request: HttpRequest) -> HttpResponse:
    from django.middleware.csrf import get_token

    return HttpResponse(f"token={get_token(request)}\n")


def forever(request: HttpRequest) -> HttpResponse:
    def wait(writer: gsse.SSEWriter) -> None:
        writer.send_event("open")
        while not writer.closed and not writer.shutting_down:
            time.sleep(0.02)
        writer.close()

    return gsse.django.stream(wait)


urlpatterns = [
    path("ticks", ticks),
    path("sign-in", sign_in),
    path("whoami", whoami),
    path("db", db_stream),
    path("news", news),
    path("publish", publish),
    path("page", page),
    path("forever", forever),
    path("runs/<str:run_id>", follow_run),
]


def application(**options: Any) -> Any:
    """A fresh ``SSEMiddleware(get_wsgi_application())`` for these settings."""
    from django.core.wsgi import get_wsgi_application

    return gsse.SSEMiddleware(get_wsgi_application(), **options)
