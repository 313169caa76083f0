"""corral's embedded router: routes HTTP by Host to the web dynos of each app."""

from __future__ import annotations

from corral.router.context import Timeouts
from corral.router.http1 import Limits
from corral.router.proxy import Router
from corral.router.table import (
    AppRoute,
    Backend,
    RouteTable,
    TableFile,
    load_route_table,
    save_route_table,
)

__all__ = [
    "AppRoute",
    "Backend",
    "Limits",
    "RouteTable",
    "Router",
    "TableFile",
    "Timeouts",
    "load_route_table",
    "save_route_table",
]
