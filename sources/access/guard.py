"""The guard of one page: who acts, whether they may, and the audit of what they did.

A view never decides who may act. It asks its :class:`Guard` at the moment of acting::

    guard.act("alarm.acknowledge", lambda actor: desk.acknowledge(aid, actor),
              county=alarm_county, target=f"alarm:{aid}")

:meth:`Guard.act` re-checks the signed-in user (a login ended since the page opened acts no
more), asks the one authorisation (:class:`sources.access.policy.Access`), records a refusal
in the audit log and raises :class:`Refused`; else runs the action with the user's name as
the actor and records it. :meth:`Guard.scope` gives the county-code prefix a page filters
its rows with. A console without login serves its pages with :meth:`Guard.open`: everyone
may do everything, as ``anonymous`` (loopback only; see ``serve.py``), still audited.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sources.access.jurisdiction import prefix
from sources.access.policy import ADMIN, ALLOWED, Access, Decision
from sources.access.sessions import Principal

PROVINCE = "370000"
OPEN_USER = "anonymous"


class Refused(PermissionError):
    """An action the user may not take: ``key`` is an i18n label, ``fmt`` its values."""

    def __init__(self, decision: Decision):
        super().__init__(decision.reason_key or "access.denied")
        self.key = decision.reason_key or "access.denied.login"
        self.fmt = dict(decision.detail)


class _OpenAccess(Access):
    """Everything allowed (a console served without login)."""

    def can(self, user, action, **kwargs) -> Decision:
        return ALLOWED


class Guard:
    """What one page's user may do, and the record of it.

    Parameters
    ----------
    access : Access
        The authorisation.
    principal : callable
        Returns the page's signed-in user now (None once the login ended).
    audit : AuditLog, optional
        Where every action and refusal is recorded.
    """

    def __init__(self, *, access: Access, principal: Callable[[], Principal | None],
                 audit: Any = None, open_: bool = False):
        self.access, self._principal, self.audit, self.is_open = access, principal, audit, open_

    @classmethod
    def open(cls, *, audit: Any = None, jurisdiction: str = PROVINCE) -> Guard:
        """No login: one local user who may do everything (a notebook, a loopback demo)."""
        user = Principal(name=OPEN_USER, role=ADMIN, jurisdiction=jurisdiction, kind="open")
        return cls(access=_OpenAccess(), principal=lambda: user, audit=audit, open_=True)

    @classmethod
    def of(cls, principal: Principal, *, access: Access | None = None,
           audit: Any = None) -> Guard:
        """A guard for a user known without a login page (tests, scripts, a notebook
        acting as someone): the real authorisation applies."""
        return cls(access=access or Access(), principal=lambda: principal, audit=audit)

    # ------------------------------------------------------------------ who
    @property
    def principal(self) -> Principal | None:
        return self._principal()

    @property
    def name(self) -> str:
        p = self.principal
        return p.name if p is not None else OPEN_USER

    @property
    def jurisdiction(self) -> str:
        p = self.principal
        return p.jurisdiction if p is not None else PROVINCE

    def scope(self) -> str | None:
        """The county-code prefix of what this user sees (None: the whole province)."""
        p = self.principal
        if p is None or self.is_open:
            return None
        pre = prefix(p.jurisdiction)
        return None if len(pre) <= 2 else pre

    def sees(self, code) -> bool:
        """Whether the area ``code`` (a county, or a city) lies in what this user sees."""
        scope = self.scope()
        return scope is None or (code is not None and str(code).startswith(scope))

    def refuse_view(self, what: str, *, county: str | None = None,
                    target: str | None = None) -> Refused:
        """Record that the user asked to see ``target`` (in ``county``) outside the
        jurisdiction — by a URL or a forged widget value; nothing of it was shown — and
        return the :class:`Refused` whose message the page shows. Recorded as action
        ``<what>.view``, outcome ``denied``."""
        decision = Decision(False, "access.denied.jurisdiction",
                            {"jurisdiction": self.jurisdiction,
                             "target": county or target or ""})
        self.record(f"{what}.view", outcome="denied", target=target,
                    target_jurisdiction=county, reason=decision.reason_key)
        return Refused(decision)

    # ------------------------------------------------------------------ may / act
    def may(self, action: str, **target) -> Decision:
        """Whether the user may take ``action`` (no record: for enabling buttons)."""
        return self.access.can(self.principal, action, **target)

    def check(self, action: str, *, target: str | None = None, county: str | None = None,
              counties=None, **earlier) -> Principal:
        """Raise :class:`Refused` (recorded) unless the user may take ``action`` now."""
        p = self.principal
        decision = self.access.can(p, action, county=county, counties=counties, **earlier)
        if not decision:
            self.record(action, outcome="denied", target=target, reason=decision.reason_key,
                        target_jurisdiction=county)
            raise Refused(decision)
        return p

    def act(self, action: str, run: Callable[[str], Any], *, target: str | None = None,
            county: str | None = None, counties=None, details: dict | None = None,
            **earlier) -> Any:
        """Check, run ``run(actor_name)``, record; a refusal raises :class:`Refused`."""
        self.check(action, target=target, county=county, counties=counties, **earlier)
        try:
            result = run(self.name)
        except Exception as exc:
            self.record(action, outcome="failed", target=target, target_jurisdiction=county,
                        reason=type(exc).__name__, details=details)
            raise
        self.record(action, target=target, target_jurisdiction=county, details=details)
        return result

    def record(self, action: str, *, outcome: str = "ok", target: str | None = None,
               target_jurisdiction: str | None = None, reason: str | None = None,
               details: dict | None = None) -> None:
        """Append to the audit log (nothing when the console keeps none)."""
        if self.audit is None:
            return
        p = self.principal
        self.audit.record(action, actor=p, outcome=outcome, target=target,
                          target_jurisdiction=target_jurisdiction, reason=reason,
                          details=details, address=getattr(p, "address", "") or "")
