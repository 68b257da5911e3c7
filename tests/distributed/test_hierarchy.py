"""County → city → province: events keep their jurisdiction, a higher level acts on what it
covers, the county sees the province's warning, and a link cut and restored loses nothing.

Three centres, each with its own log server (its own JetStream domain); the city is a leaf
node of the province and the county a leaf node of the city — through a TCP relay that the
test cuts and restores.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.distributed.conftest import NEEDS_NATS, write_centres
from tests.distributed.test_processes import breach, wait_for

pytestmark = NEEDS_NATS

ROOT = Path(__file__).resolve().parents[2]
sys.path.append(str(ROOT / "bench"))  # after site-packages: no bench script shadows a package
FEED_TABLES = ("readings", "alarms", "alarm_actions", "quarantine")


@pytest.fixture
def province(tmp_path, registry):
    from alarm_latency import BenchFeed

    from sources.distributed.ingest import CentreIngest
    from sources.distributed.local import LogServers, Relay, free_port
    from sources.distributed.log import EventLog
    from sources.distributed.serving import distributed_console
    from sources.distributed.topology import Topology

    p_leaf, c_leaf = free_port(), free_port()
    prov = LogServers(tmp_path, "370000", leaf_port=p_leaf).start()
    relay = Relay(c_leaf)  # the county-city link: the city tells its leaves to use it
    city = LogServers(tmp_path, "370100", leaf_port=c_leaf, parent=f"nats-leaf://127.0.0.1:"
                      f"{p_leaf}", leaf_advertise=f"127.0.0.1:{relay.port}").start()
    county = LogServers(tmp_path, "370102", parent=f"nats-leaf://127.0.0.1:{relay.port}").start()
    servers = [prov, city, county]
    centres = write_centres(tmp_path / "centres.json", {
        "370000": {"level": "province", "servers": prov.urls},
        "370100": {"level": "city", "parent": "370000", "servers": city.urls},
        "370102": {"level": "county", "parent": "370100", "servers": county.urls}})
    topo = Topology.load(centres)
    admins = []
    for code in ("370102", "370100", "370000"):
        admin = EventLog(servers=list(topo[code].servers)).start()
        admin.ensure_streams(topo, code)
        admin.put_snapshot(topo[code].snapshots, registry)
        admins.append(admin)
    feed = BenchFeed()
    node = CentreIngest(topology=topo, code="370102", db=str(tmp_path / "ingest.duckdb"),
                        registry=str(registry), feeds=[feed.url]).start()
    params = dict(load_layers=False, snapshot_interval_s=0, malloc_trim_s=0)
    consoles = {code: distributed_console(centres, code, tmp_path / f"{code}.duckdb",
                                          **params).start()
                for code in ("370102", "370100", "370000")}
    yield consoles, feed, relay
    for c in consoles.values():
        c.stop()
    node.stop()
    for admin in admins:
        admin.stop()
    feed._stop.set()
    relay.close()
    for s in servers:
        s.stop()


def send_readings(feed, store, n: int) -> None:
    sensors = store.arrow("SELECT sensor_id, hi FROM sensors WHERE hi IS NOT NULL "
                          "ORDER BY sensor_id DESC LIMIT 50").to_pylist()
    now = int(time.time() * 1000)
    msgs = [{"type": "reading", "seq": s, "ts": now, "sensor_id": sensors[i % 50]["sensor_id"],
             "value": sensors[i % 50]["hi"] - 100.0} for i, s in enumerate(feed.next_seqs(n))]
    for i in range(0, n, 200):
        feed.send(msgs[i:i + 200])


def table_counts(store) -> dict[str, int]:
    return {t: store.scalar(f"SELECT count(*) FROM {t}") for t in FEED_TABLES}


def test_county_city_province_with_a_link_cut_and_restored(province):
    consoles, feed, relay = province
    county, city, prov = consoles["370102"], consoles["370100"], consoles["370000"]
    sensors = breach(feed, county.store, n=2)
    send_readings(feed, county.store, 400)
    alarm_id = wait_for(lambda: prov.store.scalar(
        "SELECT min(alarm_id) FROM alarms WHERE sensor_id IN (SELECT unnest(?))", [sensors]),
        20, "the county's alarm at the province")
    assert alarm_id // 10**9 == 370102  # its jurisdiction travels with it
    wait_for(lambda: table_counts(county.store) == table_counts(city.store)
             == table_counts(prov.store), 20, "the same feed rows at every level")

    # the province acts on what it covers: its ack lands in the county's own log
    prov.alarms.acknowledge(alarm_id, "province-duty")
    wait_for(lambda: county.store.scalar("SELECT acked_by FROM alarms WHERE alarm_id = ?",
                                         [alarm_id]) == "province-duty", 5, "ack at the county")
    from sources.alarms.desk import AlarmActionError

    with pytest.raises(AlarmActionError) as lost:  # and a county officer is told who did
        county.alarms.acknowledge(alarm_id, "county-duty")
    assert lost.value.info["by"] == "province-duty"

    # a province-issued warning appears on the county's wall (and the city's)
    heard = county.hub.subscribe(["warning"])
    w = prov.warnings.issue(event="rainstorm", level="red", headline="全省暴雨红色预警",
                            counties=["370102", "370103"], expires="2099-01-01T00:00:00+00:00",
                            sender="province-duty")
    assert "-370000-" in w["warning_id"]
    wait_for(lambda: w["warning_id"] in set(county.warnings.active()["warning_id"]), 5,
             "the province's warning on the county's wall")
    assert any(m.payload[0]["warning_id"] == w["warning_id"] for m in heard.drain()[0])
    wait_for(lambda: w["warning_id"] in set(city.warnings.active()["warning_id"]), 5,
             "the province's warning at the city")
    # a county warning goes up, not sideways: the province sees it
    cw = county.warnings.issue(event="flood", level="blue", headline="县洪水蓝色预警",
                               counties=["370102"], expires="2099-01-01T00:00:00+00:00",
                               sender="county-duty")
    wait_for(lambda: prov.store.scalar("SELECT count(*) FROM warnings WHERE warning_id = ?",
                                       [cw["warning_id"]]), 10, "the county's warning above")

    # the county-city link goes down: the county works on; nothing reaches the city
    relay.cut()
    time.sleep(0.5)
    before = table_counts(city.store)
    send_readings(feed, county.store, 600)
    county.alarms.dispose(alarm_id, "county-duty", "已处置")
    wait_for(lambda: county.store.scalar("SELECT count(*) FROM readings")
             >= before["readings"] + 600, 10, "the county goes on storing")
    time.sleep(1.0)
    assert table_counts(city.store)["readings"] == before["readings"]
    relay.restore()
    wait_for(lambda: table_counts(county.store) == table_counts(city.store)
             == table_counts(prov.store), 45, "every level caught up after the link came back")
    for c in (county, city, prov):
        assert c.store.scalar("SELECT count(*) - count(DISTINCT (feed, seq)) FROM readings") == 0
        assert c.store.scalar("SELECT state FROM alarms WHERE alarm_id = ?",
                              [alarm_id]) == "disposed"
