"""Outside references for the CAP tests: the official OASIS CAP 1.2 schema, the vendored
``capparselib`` parser (and its Atom schema), ``feedparser``; and a helper that runs feed
messages through the ingest's own parse → write path (no websocket).

Nothing here is downloaded: see ``tests/references/README.md``.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from lxml import etree

from sources.ingest.feed import FeedIngest

REFERENCES = Path(__file__).resolve().parent.parent / "references"
CAP_XSD = REFERENCES / "CAP-v1.2.xsd"
ATOM_XSD = REFERENCES / "capparselib" / "schema" / "atom.xsd"
CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
NS = {"cap": CAP_NS, "atom": ATOM_NS}


@functools.cache
def _schema(path: Path) -> etree.XMLSchema:
    # no network: an import the schema names must be a local file
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.parse(str(path), parser))


def parse_strict(body: bytes) -> etree._Element:
    """Parse as well-formed XML or raise (no recovery, no network, no entities)."""
    parser = etree.XMLParser(no_network=True, resolve_entities=False, recover=False)
    return etree.fromstring(body, parser)


def assert_valid_cap(body: bytes) -> etree._Element:
    """Parse ``body`` and validate it against the official OASIS CAP 1.2 schema."""
    root = parse_strict(body)
    schema = _schema(CAP_XSD)
    if not schema.validate(root):
        raise AssertionError("not valid CAP 1.2:\n" + "\n".join(
            f"line {e.line}: {e.message}" for e in schema.error_log) + "\n" + body.decode())
    return root


def assert_valid_atom(body: bytes) -> etree._Element:
    """Parse ``body`` and validate it against the Atom 1.0 schema shipped by capparselib."""
    root = parse_strict(body)
    schema = _schema(ATOM_XSD)
    if not schema.validate(root):
        raise AssertionError("not valid Atom:\n" + "\n".join(
            f"line {e.line}: {e.message}" for e in schema.error_log))
    return root


def capparselib_alert(body: bytes) -> dict:
    """The alert as capparselib reads it (it validates against its own CAP 1.2 schema,
    which adds the standard's rules on identifier, sender and references as patterns)."""
    from tests.references.capparselib.parsers import CAPParser

    alerts = CAPParser(body.decode("utf-8")).as_dict()
    assert len(alerts) == 1, alerts
    return alerts[0]


def text(root, path: str) -> str | None:
    return root.findtext(path, namespaces=NS)


def feed_ingest(store, messages: list[dict], url: str = "ws://gw.test:9000/warnings?a=1&b=2"):
    """Run ``messages`` (one frame) through a FeedIngest's parse and write, synchronously."""
    ingest = FeedIngest(url=url, store=store)
    ingest.writer.load()
    ingest._sensors = ingest.writer.sensors
    ingest.on_frame(json.dumps(messages, ensure_ascii=False))
    batch = ingest.take_batch()
    if batch is not None:
        ingest.writer.write(batch)
    assert ingest.writer.write_errors == 0, ingest.writer.last_error
    return ingest
