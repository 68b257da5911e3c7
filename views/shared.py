"""Work shared by every open page: a result computed once per value it comes from.

Every wall page shows the same situation snapshot (``SituationSource.situation()`` returns the
same objects while nothing changed). What a page makes of it — the KPI strip's and the
ticker's markup in its language, the map layers' columns, an incident panel's text — is the
same for every page of that language, so it is made once per snapshot and handed to each
page, which then only sends its browser what changed. :class:`Shared` keys results by the
*identity* of the object they are computed from (a snapshot part, a DataFrame) plus a few
plain values (the language, the map's scale), and keeps the object alive with the result so
its ``id`` cannot be reused while it is cached.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class Shared:
    """A small cache of results per (object identity, key), safe across threads.

    Parameters
    ----------
    name : str
        What is cached (for counters and messages).
    size : int
        Results kept, least recently used dropped (a few snapshots × languages).
    """

    def __init__(self, name: str, size: int = 16):
        self.name, self.size = name, size
        self._items: OrderedDict[tuple, tuple[Any, Any]] = OrderedDict()
        # held while computing: a result is computed once even when the producer's thread
        # and a page on the server's loop ask at the same moment (reentrant: one shared
        # result may be built from another)
        self._lock = threading.RLock()
        self.computed = 0  # how many times a result was computed (what sharing saves)
        self.hits = 0

    def get(self, of: Any, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The result of ``compute()`` for the object ``of`` and ``key``, computed once."""
        k = (id(of), key)
        with self._lock:
            hit = self._items.get(k)
            if hit is not None and hit[0] is of:
                self._items.move_to_end(k)
                self.hits += 1
                return hit[1]
            value = compute()
            self.computed += 1
            self._items[k] = (of, value)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def same_columns(a: dict | None, b: dict | None) -> bool:
    """True when two column dicts (lists or arrays) hold the same values."""
    import numpy as np

    if a is b:
        return True
    if a is None or b is None or a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if len(x) != len(y):
            return False
        if isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.dtype.kind == "f":
            if not np.array_equal(x, y, equal_nan=True):
                return False
        elif isinstance(x, list) and x and isinstance(x[0], np.ndarray):
            if not all(np.array_equal(p, q, equal_nan=True) for p, q in zip(x, y, strict=True)):
                return False
        elif list(x) != list(y):
            return False
    return True


#: Up to this many values a column travels as a JSON list inside the patch; longer ones as a
#: binary buffer (each buffer is two more websocket frames, each frame a write to every page).
SMALL = 256


def compact(columns: dict, small: int = SMALL) -> dict:
    """``columns`` with short numeric arrays as lists (fewer frames to every browser)."""
    import numpy as np

    out = {}
    for k, v in columns.items():
        if isinstance(v, np.ndarray) and v.dtype.kind in "fiu" and len(v) <= small:
            v = v.tolist()
        elif isinstance(v, list) and v and isinstance(v[0], np.ndarray) \
                and sum(len(a) for a in v) <= small:
            v = [a.tolist() for a in v]
        out[k] = v
    return out
