"""The centres of a distributed deployment and how they link (one JSON file for all).

A *centre* is a county, city or province command centre (an administrative code such as
``370102``). Each runs its own log servers (a JetStream domain of its own, ``c<code>``) and
connects to its parent's servers as a NATS leaf node, so the hierarchy is the leaf-node
tree: a link that goes down stops only what flows over it, and each centre keeps working on
its own log meanwhile.

``centres.json``::

    {"centres": {
        "370000": {"level": "province", "servers": ["nats://10.0.0.1:4222"]},
        "370100": {"level": "city", "parent": "370000", "servers": ["nats://10.1.0.1:4222"]},
        "370102": {"level": "county", "parent": "370100", "replicas": 3,
                   "servers": ["nats://10.2.0.1:4222", "nats://10.2.0.2:4222",
                               "nats://10.2.0.3:4222"]}}}
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

LEVELS = ("county", "city", "province")


class TopologyError(ValueError):
    """A centres file that cannot describe a hierarchy (one line says what)."""


@dataclass(frozen=True)
class Centre:
    """One command centre: its code, level, parent and log servers."""

    code: str
    level: str
    servers: tuple[str, ...]
    parent: str | None = None
    replicas: int = 1
    name: str = ""

    @property
    def domain(self) -> str:
        """The JetStream domain of the centre's log servers."""
        return f"c{self.code}"

    @property
    def api(self) -> str:
        """The JetStream API prefix of the centre, as seen from another domain."""
        return f"$JS.{self.domain}.API"

    @property
    def own(self) -> str:
        """The stream of events that happen at this centre (the origin of its objects)."""
        return f"EV_{self.code}"

    @property
    def up(self) -> str:
        """What this centre passes up: its own replicated events and its children's."""
        return f"UP_{self.code}"

    @property
    def view(self) -> str:
        """What this centre's serving processes materialise."""
        return f"VIEW_{self.code}"

    @property
    def snapshots(self) -> str:
        """Object-store bucket of the centre's published view snapshots."""
        return f"SNAP_{self.code}"


@dataclass
class Topology:
    """Every centre of the deployment, by code."""

    centres: dict[str, Centre] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> Topology:
        """Read and check a centres file."""
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TopologyError(f"{path}: cannot read the centres file ({exc})") from None
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: dict) -> Topology:
        centres = {}
        for code, spec in (raw.get("centres") or {}).items():
            code = str(code)
            if not code.isdigit() or len(code) != 6:
                raise TopologyError(f"centre {code!r}: a centre is a 6-digit administrative code")
            level = spec.get("level")
            if level not in LEVELS:
                raise TopologyError(f"centre {code}: level is one of {', '.join(LEVELS)}")
            servers = tuple(str(s) for s in spec.get("servers") or ())
            if not servers:
                raise TopologyError(f"centre {code}: no log servers")
            replicas = int(spec.get("replicas", 1))
            if replicas not in (1, 3, 5) or replicas > len(servers):
                raise TopologyError(f"centre {code}: replicas 1, 3 or 5, at most its servers")
            centres[code] = Centre(code=code, level=level, servers=servers,
                                   parent=spec.get("parent"), replicas=replicas,
                                   name=str(spec.get("name", "")))
        topo = cls(centres)
        for c in centres.values():
            if c.parent is not None and c.parent not in centres:
                raise TopologyError(f"centre {c.code}: unknown parent {c.parent}")
            if c.parent is not None and (LEVELS.index(centres[c.parent].level)
                                         <= LEVELS.index(c.level)):
                raise TopologyError(f"centre {c.code}: its parent is not a higher level")
        return topo

    def to_dict(self) -> dict:
        return {"centres": {c.code: {"level": c.level, "servers": list(c.servers),
                                     "parent": c.parent, "replicas": c.replicas,
                                     "name": c.name} for c in self.centres.values()}}

    def __getitem__(self, code: str) -> Centre:
        try:
            return self.centres[str(code)]
        except KeyError:
            raise TopologyError(f"no centre {code} in the centres file") from None

    def children(self, code: str) -> list[Centre]:
        return [c for c in self.centres.values() if c.parent == code]

    def ancestors(self, code: str) -> list[Centre]:
        out, parent = [], self[code].parent
        while parent is not None:
            out.append(self[parent])
            parent = self[parent].parent
        return out

    def owner_of(self, county_code: str | None, default: str) -> str:
        """The centre that owns an object of ``county_code``: the county's own centre if it
        has one, else its city's, else ``default``."""
        if county_code:
            for code in (county_code, county_code[:4] + "00", county_code[:2] + "0000"):
                if code in self.centres:
                    return code
        return default
