"""A lived-in province: the recent past of the live tables, written by the demo generator.

:func:`build_history` writes the week before ``now`` (the moment the console is meant to
start) under the laws of the simulator (:mod:`data.province_model`):

- readings (:mod:`.readings`): stations every 60 s over the last 72 h, installation sensors
  around their excursions and over the last 6 h; all evaluated by the console's alarm
  engine, so the alarms are exactly those the console would have raised;
- alarms worked by named duty officers (:mod:`.duty`): acknowledged, disposed, closed,
  escalated when red and unacknowledged for 15 minutes; at ``now`` some are open in each
  state (one escalated);
- warnings (:mod:`.weather`, :mod:`.warnings`): rainstorm warnings of the rain cells,
  geological-hazard warnings where heavy rain crossed the hills, the weather service's
  seasonal warnings, the officers' flood and forest-fire warnings — issued, updated,
  cancelled, expired; some in force at ``now``;
- incidents, quakes and hotspots (:mod:`.events`), some of them in the last hours.

Rows that "came from a feed" carry ``feed = 'history://demo'`` and seqs in time order; the
same seed and ``now`` give the same rows.
"""
from __future__ import annotations

import datetime as dt
import math

from data.province_model import Registry

from .base import DAY_S, FEED, FeedLog, Past
from .duty import OFFICERS

__all__ = ["FEED", "OFFICERS", "build_history", "history_end"]


def history_end(today: dt.date | None, clock: dt.datetime | None = None) -> dt.datetime:
    """"Now" of a build: the clock, or the end of ``today`` when that day is over (so a
    build for a past day is reproducible), to the whole minute."""
    clock = clock or dt.datetime.now(dt.UTC)
    end = clock
    if today is not None:
        end = min(clock, dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), dt.UTC))
    return end.replace(second=0, microsecond=0)


def build_history(world, store, *, now: dt.datetime, days: float = 7.0) -> dict[str, int]:
    """Write the ``days`` before ``now`` into the live tables of ``store``.

    Parameters
    ----------
    world : data.generate.World
        The registry being built (geography and seed).
    store : sources.store.Store
        The store, with every registry table written.
    now : datetime.datetime
        End of the history (aware); minute-aligned.
    days : float
        Length of the history.

    Returns
    -------
    dict
        Rows written per table, and the alarms by state at ``now``.
    """
    from . import duty, events, warnings, write
    from .plants import PlantPast
    from .readings import ReadingsPast
    from .weather import WeatherPast

    end = float(math.floor(now.timestamp() / 60) * 60)
    cur = store.cursor()
    try:
        registry = Registry.from_connection(cur)
    finally:
        cur.close()
    past = Past(start=end - days * DAY_S, end=end, seed=world.seed, registry=registry,
                geo=world.geo)
    weather = WeatherPast(past)
    plants = PlantPast(past)
    readings = ReadingsPast(past, weather, plants, store)
    readings.run()
    scripted = {str(registry.sensors["sensor_id"].iloc[e.sensor]): e.role
                for e in plants.excursions if e.role}
    states = duty.work_alarms(past, store, scripted)

    log = FeedLog()
    weather.warnings(log)
    w = warnings.WarningPast(past, weather, log)
    w.weather_service()
    w.floods(store)
    w.duty_desk()
    w.write_officers()
    events.hotspots(past, weather, log)
    events.quakes(past, log)
    events.IncidentPast(past, weather, log).build()
    counts = write.write(store, readings.chunks, log, registry.sensors["sensor_id"].to_numpy(),
                         past.rng("write"))
    counts.update({f"alarms.{k}": int(v) for k, v in states.items()})
    counts["alarms"] = sum(states.values())
    return counts
