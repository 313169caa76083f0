"""The supervisor's view of the store: read again only after a commit, woken by one."""

from __future__ import annotations

import asyncio
import time

from corral.config import Settings
from corral.runtime.view import StoreView
from corral.store import WAKE_SOCKET, Store


def test_the_view_keeps_what_it_read_until_someone_commits(settings: Settings) -> None:
    writer, reader = Store.for_settings(settings), Store.for_settings(settings, wake=False)
    view = StoreView(reader)
    writer.create_app("first")
    assert view.refresh() is True
    assert list(view.apps) == ["first"] and view.current_release("first") is None
    assert view.refresh() is False  # nothing committed since: nothing read again
    writer.create_release("first", "s1", "/slugs/s1", {"web": "gunicorn app:app"}, "Deploy s1")
    assert view.current_release("first") is None  # as of its last read
    assert view.changed() is True
    assert view.refresh() is True
    current = view.current_release("first")
    assert current is not None and current.version == 1
    writer.create_app("second")
    view.refresh()
    assert list(view.apps) == ["first", "second"]


def test_an_app_destroyed_since_the_view_listed_it_has_no_rows(settings: Settings) -> None:
    writer, reader = Store.for_settings(settings), Store.for_settings(settings, wake=False)
    view = StoreView(reader)
    writer.create_app("brief")
    view.refresh()
    assert "brief" in view.apps
    writer.delete_app("brief")  # between the supervisor's refresh and its reads of the app
    assert view.current_release("brief") is None
    assert view.pending_releases("brief") == [] and view.formation("brief") == []
    assert view.refresh() is True and "brief" not in view.apps


def test_a_write_wakes_the_listening_supervisor_and_none_listening_is_no_error(
    settings: Settings,
) -> None:
    writer = Store.for_settings(settings)
    writer.create_app("before")  # nobody listens yet: the write is all that happens
    quiet = Store.for_settings(settings, wake=False)

    async def woken_by(store: Store, app: str) -> bool:
        view, stop = StoreView(quiet), asyncio.Event()
        with view.listening(settings.run_dir / WAKE_SOCKET):
            asyncio.get_running_loop().call_later(0.05, store.create_app, app)
            started = time.monotonic()
            await view.pause(2, stop)
            return time.monotonic() - started < 1.5

    assert asyncio.run(woken_by(writer, "woken")) is True
    assert (settings.run_dir / WAKE_SOCKET).stat().st_mode & 0o777 == 0o600
    assert asyncio.run(woken_by(quiet, "unheard")) is False  # the supervisor's own writes
    assert {app.name for app in writer.list_apps()} == {"before", "woken", "unheard"}
