"""One model: the notes the page lists and the stream announces."""

from __future__ import annotations

from django.db import models


class Note(models.Model):
    author = models.CharField(max_length=150)
    text = models.CharField(max_length=200)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def as_event(self) -> dict[str, object]:
        return {"id": self.id, "author": self.author, "text": self.text}
