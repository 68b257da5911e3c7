"""Who may do what: roles × jurisdiction × action × target, in one table and one function.

``Access().can(user, "alarm.acknowledge", county="371302")`` answers a :class:`Decision`
whose ``reason_key`` (when refused) is a label of :mod:`views.i18n` (``access.denied.*``).
Every page, HTTP route and officer action asks here; nothing else decides. An action or a
page that is not in the tables is refused (deny by default): a new page is opened to a role
by adding one line to :data:`PAGES`.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sources.access.jurisdiction import contains

WALL, OFFICER, ANALYST, ADMIN = "wall", "officer", "analyst", "admin"
ROLES: tuple[str, ...] = (WALL, OFFICER, ANALYST, ADMIN)
EVERYONE = frozenset(ROLES)


@dataclass(frozen=True)
class Action:
    """An action: the roles that may take it and whether its target must lie inside the
    actor's jurisdiction (``scoped``)."""

    roles: frozenset[str]
    scoped: bool = True


def _a(*roles: str, scoped: bool = True) -> Action:
    return Action(frozenset(roles), scoped)


# The one table of actions. Officers act, analysts query, admins administer, walls only
# look. Exports are scoped like everything else: a county exports its county.
ACTIONS: dict[str, Action] = {
    # alarms (报警): acknowledge, dispose, close (消警)
    "alarm.acknowledge": _a(OFFICER),
    "alarm.dispose": _a(OFFICER),
    "alarm.close": _a(OFFICER),
    # warnings (预警发布): every county of the area must be the officer's
    "warning.issue": _a(OFFICER),
    "warning.update": _a(OFFICER),
    "warning.cancel": _a(OFFICER),
    # incidents (突发事件)
    "incident.create": _a(OFFICER),
    "incident.update": _a(OFFICER),
    "incident.close": _a(OFFICER),
    # materials (物资调拨): separation of duties in SEPARATION below
    "dispatch.request": _a(OFFICER),
    "dispatch.approve": _a(OFFICER),
    "dispatch.reject": _a(OFFICER),
    "dispatch.ship": _a(OFFICER),
    "dispatch.receive": _a(OFFICER),
    "stock.adjust": _a(OFFICER),
    # experts (专家抽取): the drawer is recorded in the draw and in the audit log
    "expert.draw": _a(OFFICER),
    "expert.redraw": _a(OFFICER),
    "expert.rate": _a(OFFICER),
    "expert.fee": _a(OFFICER),
    # drills (应急演练): officers run them; purging a drill's data is an administrator's
    "drill.start": _a(OFFICER, ADMIN, scoped=False),
    "drill.control": _a(OFFICER, ADMIN, scoped=False),  # pause, resume, stop
    "drill.purge": _a(ADMIN, scoped=False),
    # analysis: the SQL console, notebooks, snapshots, exports
    "console.query": _a(ANALYST, scoped=False),
    "console.save": _a(ANALYST, scoped=False),
    "console.overwrite_any": _a(ADMIN, scoped=False),  # others' saved consoles
    "console.pin": _a(ADMIN, scoped=False),  # a pinned console runs for every viewer
    "notebook.open": _a(ANALYST, scoped=False),
    "snapshot.write": _a(ANALYST, ADMIN, scoped=False),
    "export": _a(OFFICER, ANALYST, ADMIN),
    # administration: accounts, feeds, retention, the audit log, CAP dissemination
    "user.manage": _a(ADMIN),
    "feed.manage": _a(ADMIN, scoped=False),
    "retention.manage": _a(ADMIN, scoped=False),
    "audit.view": _a(ADMIN),
    "audit.export": _a(ADMIN),
    "cap.manage": _a(ADMIN, scoped=False),
    "health.detail": _a(ADMIN, scoped=False),
}

# Separation of duties: the named earlier actor of the same object may not take the action.
# The requester of a dispatch does not approve or reject it (申请与审批分离); the one who
# shipped it does not sign its receipt. Callers pass the earlier actors:
# can(u, "dispatch.approve", requested_by="li.si").
SEPARATION: dict[str, tuple[str, ...]] = {
    "dispatch.approve": ("requested_by",),
    "dispatch.reject": ("requested_by",),
    "dispatch.receive": ("shipped_by",),
}

# Pages and routes by their first path segment. ASSETS: what any signed-in page loads.
VIEWERS = frozenset({WALL, OFFICER, ANALYST, ADMIN})
PAGES: dict[str, frozenset[str]] = {
    "/": VIEWERS,  # the index
    "/board": VIEWERS,
    "/warnings": VIEWERS,
    "/risk": VIEWERS,
    "/alarms": VIEWERS,
    "/inventory": VIEWERS,
    "/pinned": VIEWERS,
    "/command": frozenset({WALL, OFFICER, ADMIN}),
    "/drills": frozenset({OFFICER, ANALYST, ADMIN}),
    "/console": frozenset({ANALYST}),
    "/admin": frozenset({ADMIN}),
    "/health": VIEWERS,  # detail (paths, URLs, errors) needs "health.detail"
    "/cap": VIEWERS,  # public when the console publishes CAP (public_paths)
}
ASSETS = ("/static", "/components", "/favicon.ico")


class Actor(Protocol):
    name: str
    role: str
    jurisdiction: str


@dataclass(frozen=True)
class Decision:
    """The answer of :meth:`Access.can`: truthy when allowed; ``reason_key`` says why not
    (a label of ``views.i18n``), ``detail`` carries what the label is formatted with."""

    allowed: bool
    reason_key: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.allowed


ALLOWED = Decision(True)


# Bokeh serves each page's websocket, autoload script and metadata under the page's path;
# for the index page (served at "/") they are at the top level.
_INDEX_PARTS = {"/ws", "/autoload.js", "/metadata"}


def page_of(path: str) -> str:
    """The page key of a URL path: its first segment (``/board/ws`` → ``/board``)."""
    head = "/" + path.split("?", 1)[0].lstrip("/").split("/", 1)[0]
    return "/" if head in _INDEX_PARTS else head


class Access:
    """The authorisation of the console.

    Parameters
    ----------
    actions, pages : dict, optional
        Replace or extend the tables (``Access(pages={**PAGES, "/report": VIEWERS})``).
    separation : dict, optional
        Separation-of-duties rules (default :data:`SEPARATION`).
    """

    def __init__(self, *, actions: dict[str, Action] | None = None,
                 pages: dict[str, frozenset[str]] | None = None,
                 separation: dict[str, tuple[str, ...]] | None = None):
        self.actions = dict(ACTIONS if actions is None else actions)
        self.pages = dict(PAGES if pages is None else pages)
        self.separation = dict(SEPARATION if separation is None else separation)

    def can(self, user: Actor | None, action: str, *, county: str | None = None,
            counties: Iterable[str] | None = None, **earlier_actors: str | None) -> Decision:
        """May ``user`` take ``action`` on a target in ``county`` (or in all of ``counties``)?

        A scoped action without a target means the whole province: only a province user
        may take it. ``earlier_actors`` name who did the earlier steps of the same object
        (``requested_by=``, ``shipped_by=``, ``drawn_by=``) for separation of duties.
        """
        if user is None or getattr(user, "disabled", False):
            return Decision(False, "access.denied.login")
        rule = self.actions.get(action)
        if rule is None:
            return Decision(False, "access.denied.unknown_action", {"action": action})
        if user.role not in rule.roles:
            return Decision(False, "access.denied.role",
                            {"action": action, "role": user.role})
        if rule.scoped:
            targets = [county] if county is not None else list(counties or [])
            if not targets:
                targets = [user.jurisdiction[:2] + "0000"]  # the whole province
            outside = [c for c in targets if not contains(user.jurisdiction, str(c))]
            if outside:
                return Decision(False, "access.denied.jurisdiction",
                                {"jurisdiction": user.jurisdiction, "target": outside[0]})
        for key in self.separation.get(action, ()):
            if earlier_actors.get(key) is not None and earlier_actors[key] == user.name:
                return Decision(False, "access.denied.separation", {"action": action,
                                                                     "step": key})
        return ALLOWED

    def can_open(self, user: Actor | None, path: str) -> Decision:
        """May ``user`` open the page or route at URL ``path``?"""
        if user is None or getattr(user, "disabled", False):
            return Decision(False, "access.denied.login")
        key = page_of(path)
        if key in ASSETS:
            return ALLOWED
        roles = self.pages.get(key)
        if roles is None:
            return Decision(False, "access.denied.page", {"page": key})
        if user.role not in roles:
            return Decision(False, "access.denied.role", {"page": key, "role": user.role})
        return ALLOWED

    def actions_of(self, role: str) -> list[str]:
        """The actions ``role`` may take (for the admin page and the docs)."""
        return sorted(a for a, rule in self.actions.items() if role in rule.roles)

    def pages_of(self, role: str) -> list[str]:
        """The pages ``role`` may open."""
        return sorted(p for p, roles in self.pages.items() if role in roles)
