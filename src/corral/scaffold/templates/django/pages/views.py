"""The home page and a small JSON API."""

from __future__ import annotations

import os

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone


def index(request: HttpRequest) -> HttpResponse:
    """The home page."""
    return render(request, "pages/index.html", {"greeting": settings.GREETING})


def hello(request: HttpRequest) -> JsonResponse:
    """The greeting, the time and which process answered."""
    return JsonResponse(
        {
            "message": settings.GREETING,
            "time": timezone.localtime().isoformat(timespec="seconds"),
            "dyno": os.environ.get("DYNO", "local"),
        }
    )
