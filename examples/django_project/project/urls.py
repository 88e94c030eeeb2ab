"""The example's URLs: a page, two forms, two streams."""

from __future__ import annotations

from django.urls import path
from notes import views

urlpatterns = [
    path("", views.index, name="index"),
    path("sign-in", views.sign_in, name="sign-in"),
    path("notes", views.publish, name="publish"),
    path("events", views.events, name="events"),
    path("me/events", views.me_events, name="me-events"),
    path("_gsse/gsse.js", views.gsse_js, name="gsse-js"),
]
