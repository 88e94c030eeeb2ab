"""Ordinary Django views, plus two that stream.

- ``events`` follows the ``notes`` channel: ``gsse.django.subscribe``.
  A browser that reconnects with ``Last-Event-ID`` gets what it missed.
- ``me_events`` is a callback stream: it reads ``request.user`` in the view
  (where Django's middleware has set it) and queries the database in the
  callback, whose connection gsse closes when the callback returns.
- ``publish`` is a plain form view, CSRF-protected as usual, that saves a
  note and publishes it.
"""

from __future__ import annotations

from django.contrib.auth import login
from django.contrib.auth.models import User
from django.http import FileResponse
from django.http import HttpRequest
from django.http import HttpResponse
from django.http import JsonResponse
from django.shortcuts import redirect
from django.shortcuts import render
from django.views.decorators.http import require_POST

import gsse
import gsse.django

from .models import Note

#: memory:// by default; GSSE_BROKER=redis://... (or gsse run --broker)
#: shares the channel between processes.
broker = gsse.Broker.from_url(history=100)


def index(request: HttpRequest) -> HttpResponse:
    notes = Note.objects.all()[:20]
    return render(request, "notes/index.html", {"notes": notes})


@require_POST
def sign_in(request: HttpRequest) -> HttpResponse:
    """A demo sign-in by name alone (no password): enough to show request.user."""
    name = request.POST.get("name", "").strip()[:150]
    if not name.isidentifier():
        return HttpResponse("a name is letters, digits and _\n", status=400)
    user, _ = User.objects.get_or_create(username=name)
    login(request, user)
    return redirect("index")


@require_POST
def publish(request: HttpRequest) -> HttpResponse:
    text = request.POST.get("text", "").strip()
    if not 0 < len(text) <= 200:
        return HttpResponse("a note is 1 to 200 characters\n", status=400)
    author = request.user.get_username() or "anonymous"
    note = Note.objects.create(author=author, text=text)
    event_id = broker.publish("notes", note.as_event(), event="note")
    if request.headers.get("Accept") == "application/json":
        return JsonResponse({"id": event_id, "note": note.as_event()}, status=201)
    return redirect("index")


def events(request: HttpRequest) -> HttpResponse:
    return gsse.django.subscribe(broker, "notes")


def me_events(request: HttpRequest) -> HttpResponse:
    user = request.user.get_username() or "anonymous"  # read in the view

    def hello(writer: gsse.SSEWriter) -> None:
        with writer:
            mine = Note.objects.filter(author=user).count()  # its own connection
            writer.send_event({"user": user, "notes": mine}, event="hello")

    return gsse.django.stream(hello, retry=60_000)


def gsse_js(request: HttpRequest) -> FileResponse:
    """gsse's browser module, which the page imports (see docs/browser.md)."""
    module = open(gsse.static_file("gsse.js"), "rb")  # FileResponse closes it
    return FileResponse(module, content_type="text/javascript")
