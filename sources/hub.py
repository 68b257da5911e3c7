"""In-process publish/subscribe: the ingest publishes, every open page subscribes.

Publishing never blocks: each subscriber has a bounded queue, and when it is full the oldest
message is dropped and the subscriber is marked ``missed`` so it reloads from the store.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Message:
    """One publication: a topic ('reading', 'alarm', 'warning', ...) and its payload.

    ``at`` is the ``time.monotonic()`` of the publication: whatever a page reads from the
    store after that moment includes it (the writer publishes after its commit).
    """

    topic: str
    payload: Any
    at: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class Subscription:
    """A subscriber's bounded queue. Drain it from the page's own callback."""

    topics: frozenset[str] | None
    maxsize: int
    notify: Callable[[], None] | None = None
    queue: deque = field(init=False)
    missed: bool = False
    dropped: int = 0
    closed: bool = False

    def __post_init__(self):
        self.queue = deque()
        self._lock = threading.Lock()

    def wants(self, topic: str) -> bool:
        return self.topics is None or topic in self.topics

    def put(self, message: Message) -> None:
        with self._lock:
            if len(self.queue) >= self.maxsize:
                self.queue.popleft()
                self.missed = True
                self.dropped += 1
            self.queue.append(message)

    def drain(self) -> tuple[list[Message], bool]:
        """Take every queued message; the flag says whether some were dropped since last time."""
        with self._lock:
            items = list(self.queue)
            self.queue.clear()
            missed, self.missed = self.missed, False
        return items, missed


class Hub:
    """Topic-based pub/sub with a bounded queue per subscriber."""

    def __init__(self):
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()
        self.published = 0

    def subscribe(
        self,
        topics: Iterable[str] | None = None,
        *,
        maxsize: int = 1000,
        notify: Callable[[], None] | None = None,
    ) -> Subscription:
        """Subscribe to some topics (None: all). ``notify`` is called after each put."""
        sub = Subscription(frozenset(topics) if topics is not None else None, maxsize, notify)
        with self._lock:
            self._subs = [*self._subs, sub]
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.closed = True
        with self._lock:
            self._subs = [s for s in self._subs if s is not sub]

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def publish(self, topic: str, payload: Any) -> None:
        """Hand a message to every interested subscriber; never blocks on a slow one."""
        message = Message(topic, payload)
        self.published += 1
        for sub in self._subs:  # copy-on-write list: safe without the lock
            if sub.wants(topic):
                sub.put(message)
                if sub.notify is not None:
                    try:
                        sub.notify()
                    except Exception:  # a closed page's callback must not hurt the ingest
                        self.unsubscribe(sub)
