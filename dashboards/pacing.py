"""Pages are built one at a time, and the server turns between them.

Building a page runs on the server's one IO loop (0.15–0.5 CPU s, ``bench/page_cost.py``).
When many walls ask at once (a shift change, every wall reconnecting after a restart), Tornado
reads their requests in one turn of the loop and builds those pages back to back before it
looks at its sockets again: meanwhile ``/health``, the open pages' websockets and the officers'
clicks wait (``tests/dashboards/test_pacing.py`` shows a request waiting behind the pages
that came before it; ``/health`` took up to 2.8–5.2 s during bursts of 50 walls on the
release before this one).

:func:`pace_pages` makes each page request wait its turn on one lock and lets the loop turn
once before building: between two pages, whatever else arrived is answered. The pages take
as long in total (one thread builds them either way); the rest of the server no longer queues
behind the whole burst.
"""
from __future__ import annotations

import asyncio


class _Paced:
    """Mixed in before a page handler: its ``get`` waits for the page before it."""

    _console_paced = True

    async def get(self, *args, **kwargs):
        async with _lock():
            await asyncio.sleep(0)  # one turn of the loop: what else arrived goes first
            return await super().get(*args, **kwargs)


_locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}


def _lock() -> asyncio.Lock:
    """The running loop's lock (a console process has one loop; tests may run several)."""
    loop = asyncio.get_running_loop()
    lock = _locks.get(loop)
    if lock is None:
        for old in [k for k in _locks if k.is_closed()]:
            del _locks[old]
        lock = _locks[loop] = asyncio.Lock()
    return lock


def pace_pages(server) -> int:
    """Pace every page route of ``server`` (from ``pn.serve(..., start=False)``, after the
    access gate is installed); returns the routes changed."""
    from bokeh.server.views.doc_handler import DocHandler

    from .auth import _rules

    changed = 0
    for rule in _rules(server._tornado.wildcard_router):
        target = rule.target
        if isinstance(target, type) and issubclass(target, DocHandler) \
                and not getattr(target, "_console_paced", False):
            rule.target = type(target.__name__, (_Paced, target),
                               {"__module__": target.__module__})
            changed += 1
    return changed
