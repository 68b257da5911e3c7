"""The seqs of a feed already stored, held in memory as intervals (exactly-once persistence).

:class:`SeqIntervals` holds the seqs already stored for one feed as sorted, disjoint
intervals; a batch is checked against them with ``numpy.searchsorted``, so the check costs
the same with a thousand stored rows or hundreds of millions.
"""
from __future__ import annotations

import numpy as np

#: Every table that holds feed messages (the idempotency key (feed, seq) spans them all).
MESSAGE_TABLES = ("readings", "hotspots", "quakes", "incidents", "warnings")


class SeqIntervals:
    """Stored seqs of one feed as sorted, disjoint, non-adjacent closed intervals.

    A feed whose seqs are contiguous needs one interval whatever its size. One with gaps
    (seqs need only increase) needs one per run, so memory is capped: beyond
    ``max_intervals`` the lowest ones are forgotten and ``floor`` rises; a seq below
    ``floor`` (a very late one) is then looked up in the store instead.
    """

    def __init__(self, starts=(), ends=(), *, floor: int | None = None,
                 max_intervals: int = 200_000):
        self.starts = np.array(starts, dtype=np.int64)
        self.ends = np.array(ends, dtype=np.int64)
        self.floor = floor
        self.max_intervals = max_intervals
        self._normalise()

    def __len__(self) -> int:
        return len(self.starts)

    def __repr__(self) -> str:
        pairs = ", ".join(f"[{a}, {b}]" for a, b in zip(self.starts[:5], self.ends[:5], strict=True))
        return f"SeqIntervals({pairs}{', ...' if len(self) > 5 else ''}, floor={self.floor})"

    @property
    def max(self) -> int | None:
        """Highest stored seq (None when nothing is stored)."""
        return int(self.ends[-1]) if len(self.ends) else None

    @property
    def count(self) -> int:
        return int((self.ends - self.starts + 1).sum())

    def contains(self, seqs: np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``seqs`` are known to be stored (see :meth:`unknown`)."""
        if not len(self.starts) or not len(seqs):
            return np.zeros(len(seqs), dtype=bool)
        idx = np.searchsorted(self.starts, seqs, side="right") - 1
        inside = idx >= 0
        return inside & (seqs <= self.ends[np.maximum(idx, 0)])

    def unknown(self, seqs: np.ndarray) -> np.ndarray:
        """Boolean mask: seqs below ``floor``, which only the store can tell about."""
        if self.floor is None:
            return np.zeros(len(seqs), dtype=bool)
        return seqs < self.floor

    def add(self, seqs: np.ndarray) -> None:
        """Record newly stored seqs."""
        if not len(seqs):
            return
        s = np.asarray(seqs, dtype=np.int64)
        if len(s) > 1 and not (s[1:] > s[:-1]).all():  # sorting is rarely needed
            s = np.unique(s)
        if len(self.starts) and s[0] == self.ends[-1] + 1 and s[-1] - s[0] == len(s) - 1:
            self.ends[-1] = s[-1]  # the usual case: the batch continues the last interval
            return
        breaks = np.flatnonzero(np.diff(s) != 1)
        starts = np.concatenate([s[:1], s[breaks + 1]])
        ends = np.concatenate([s[breaks], s[-1:]])
        self.starts = np.concatenate([self.starts, starts])
        self.ends = np.concatenate([self.ends, ends])
        self._normalise()

    def _normalise(self) -> None:
        if len(self.starts) >= 2:
            order = np.argsort(self.starts, kind="stable")
            starts, ends = self.starts[order], self.ends[order]
            reach = np.maximum.accumulate(ends)
            new = np.ones(len(starts), dtype=bool)
            new[1:] = starts[1:] > reach[:-1] + 1
            self.starts = starts[new]
            self.ends = np.maximum.reduceat(ends, np.flatnonzero(new))
        if len(self.starts) > self.max_intervals:  # forget the oldest half
            keep = self.max_intervals // 2
            self.starts, self.ends = self.starts[-keep:].copy(), self.ends[-keep:].copy()
            self.floor = int(self.starts[0])


def _union(tables=MESSAGE_TABLES) -> str:
    return " UNION ALL ".join(
        f"SELECT seq FROM {t} WHERE feed = $feed AND seq IS NOT NULL" for t in tables)


def load_intervals(store, feed: str, *, max_rows: int = 2_000_000) -> SeqIntervals:
    """Stored seqs of ``feed`` over every message table.

    Contiguous seqs (the usual case) cost one aggregate; otherwise the islands of the
    ``max_rows`` highest seqs are loaded and lower ones are left to :meth:`stored_in_db`.
    """
    union = _union()
    n, lo, hi = store.arrow(
        f"SELECT count(*)::BIGINT, min(seq), max(seq) FROM ({union})", {"feed": feed}
    ).to_pylist()[0].values()
    if not n:
        return SeqIntervals()
    if hi - lo + 1 == n:  # no gap (the writer never stores a seq twice): one interval
        return SeqIntervals([lo], [hi])
    islands = store.arrow(
        f"WITH top AS (SELECT seq FROM ({union}) ORDER BY seq DESC LIMIT {int(max_rows)}) "
        f"SELECT min(seq) AS lo, max(seq) AS hi FROM ("
        f"  SELECT seq, seq - row_number() OVER (ORDER BY seq) AS grp FROM top"
        f") GROUP BY grp ORDER BY lo", {"feed": feed})
    starts, ends = islands.column("lo").to_numpy(), islands.column("hi").to_numpy()
    floor = int(starts[0]) if n > max_rows else None
    return SeqIntervals(starts, ends, floor=floor)


def stored_in_db(cur, feed: str, seqs: np.ndarray) -> np.ndarray:
    """Boolean mask: which of ``seqs`` the store holds for ``feed`` (for very late seqs)."""
    if not len(seqs):
        return np.zeros(0, dtype=bool)
    rows = cur.execute(
        f"SELECT DISTINCT seq FROM ({_union()}) WHERE seq IN (SELECT unnest($seqs::BIGINT[]))",
        {"feed": feed, "seqs": [int(x) for x in seqs]}).fetchall()
    return np.isin(seqs, np.array([r[0] for r in rows], dtype=np.int64))
