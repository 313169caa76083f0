"""The project's URLs: the pages app and Django's admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("pages.urls")),
    path("admin/", admin.site.urls),
]
