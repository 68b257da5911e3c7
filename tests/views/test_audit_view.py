"""The administrators' audit view: entries shown, the chain verified, an alteration named,
and a non-administrator refused (and recorded)."""
from __future__ import annotations

from sources.access.audit import AuditLog
from sources.access.guard import Guard
from sources.access.sessions import Principal
from sources.base import Source
from views.audit_view import AuditView


def guard(role: str, audit, jurisdiction: str = "370000") -> Guard:
    return Guard.of(Principal(name=f"{role}.one", role=role, jurisdiction=jurisdiction),
                    audit=audit)


def test_admin_reads_verifies_and_finds_an_alteration(store):
    audit = AuditLog(store)
    officer = Principal(name="li.si", role="officer", jurisdiction="371302")
    for i in range(5):
        audit.record("alarm.acknowledge", actor=officer, target=f"alarm:{i}")
    view = AuditView(source=Source(store=store), lang="en", guard=guard("admin", audit))
    assert list(view.entries.value.target[:5]) == [f"alarm:{i}" for i in (4, 3, 2, 1, 0)]
    view.user.value = "li.si"
    assert len(view.refresh()) == 5
    assert view.verify() is True and "intact" in view.note.object
    store.execute("UPDATE audit_log SET target = 'alarm:99' WHERE target = 'alarm:2'")
    assert view.verify() is False and "altered" in view.note.object
    assert "alarm:2" not in set(view.refresh().target)  # what it says now is shown, flagged


def test_an_officer_is_refused_and_the_attempt_recorded(store):
    audit = AuditLog(store)
    view = AuditView(source=Source(store=store), lang="en", guard=guard("officer", audit))
    assert "Your role may not" in view.note.object
    assert view.verify() is None
    tried = audit.export(action="audit.view")
    assert set(tried.outcome) == {"denied"} and set(tried.user_name) == {"officer.one"}
