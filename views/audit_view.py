"""The administrators' view of the audit log: filter, read, export, verify the hash chain."""
from __future__ import annotations

import html
import io

import pandas as pd
import panel as pn
import param

from sources.access.audit import AuditLog
from sources.base import Source

from .base import Refused, View
from .inventory_common import table
from .panes import HTML

NOTE_CSS = """
.audit-note.ok { color: #135e2b; font-weight: 600; }
.audit-note.err { color: #a3001c; font-weight: 600; }
"""


class AuditView(View):
    """Who did what, when, from where: the tamper-evident audit log (admins only)."""

    view_type = "audit_log"

    source = param.ClassSelector(class_=Source, doc="Any source on the console's store.")
    limit = param.Integer(default=500, bounds=(10, 100_000), doc="Entries shown at most.")

    def __init__(self, **params):
        super().__init__(**params)
        t = self.t
        self.audit = AuditLog(self.source.store)
        self.user = pn.widgets.TextInput(name=t("audit.user"), width=160)
        self.action = pn.widgets.TextInput(name=t("audit.action"), width=200,
                                           placeholder="login.*")
        self.go = pn.widgets.Button(name=t("audit.show"), button_type="primary")
        self.verify_btn = pn.widgets.Button(name=t("audit.verify"))
        self.download = pn.widgets.FileDownload(callback=self._csv, filename="audit-log.csv",
                                                label=t("audit.export"))
        self.note = HTML("", stylesheets=[NOTE_CSS], sizing_mode="stretch_width")
        self.entries = table(page_size=15)
        self.go.on_click(lambda _e: self.refresh())
        self.verify_btn.on_click(lambda _e: self.verify())
        self.refresh()

    def _filters(self) -> dict:
        return {"user": self.user.value.strip() or None,
                "action": self.action.value.strip() or None,
                "jurisdiction_prefix": self.guard.scope()}

    def refresh(self) -> pd.DataFrame | None:
        """Show the newest entries matching the filters (an admin's own jurisdiction)."""
        try:
            self.guard.check("audit.view", county=self._county())
        except Refused as exc:
            self._say(self.refusal(exc), ok=False)
            return None
        try:
            df = self.audit.export(limit=self.limit, **self._filters())
        except Exception:  # noqa: BLE001 - a snapshot or store without an audit log
            self._say(self.t("audit.none"), ok=False)
            return None
        self.entries.value = df
        return df

    def verify(self) -> bool | None:
        """Check the whole hash chain; name the first broken entry."""
        try:
            self.guard.check("audit.view", county=self._county())
        except Refused as exc:
            self._say(self.refusal(exc), ok=False)
            return None
        try:
            result = self.audit.verify()
        except Exception:  # noqa: BLE001 - no audit log here
            self._say(self.t("audit.none"), ok=False)
            return None
        self.guard.record("audit.verify", outcome="ok" if result.ok else "failed",
                          details={"checked": result.checked, "first_bad": result.first_bad})
        if result.ok:
            self._say(self.t("audit.verified", n=result.checked), ok=True)
        else:
            self._say(self.t("audit.broken", seq=result.first_bad, problem=result.problem),
                      ok=False)
        return result.ok

    def _county(self) -> str | None:
        return None if self.guard.scope() is None else self.guard.jurisdiction

    def _csv(self) -> io.BytesIO:
        self.guard.check("audit.export", county=self._county())
        data = self.audit.export_csv(**self._filters())
        self.guard.record("audit.export", target="audit_log", details=self._filters())
        return io.BytesIO(data)

    def _say(self, text: str, *, ok: bool) -> None:
        self.note.object = (f'<span class="audit-note {"ok" if ok else "err"}">'
                            f"{html.escape(text)}</span>")

    def __panel__(self):
        return pn.Column(pn.Row(self.user, self.action, self.go, self.verify_btn,
                                self.download), self.note, self.entries,
                         sizing_mode="stretch_width")
