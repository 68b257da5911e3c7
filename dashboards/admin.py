"""``/admin``: the administrators' page: the accounts (managed with
``python -m sources.access.users``) and the tamper-evident audit log (read, export, verify)."""
from __future__ import annotations

import html
from typing import ClassVar

import pandas as pd
import panel as pn

from views.audit_view import AuditView
from views.inventory_common import table
from views.panes import HTML

from .base import Dashboard
from .theme import page


class AdminPage(Dashboard):
    """Accounts and the audit log."""

    route: ClassVar[str] = "admin"
    title_key: ClassVar[str] = "app.admin"
    description_key: ClassVar[str] = "app.admin.desc"
    order: ClassVar[int] = 90

    def users_frame(self) -> pd.DataFrame:
        """The accounts (no secret: names, roles, jurisdictions, disabled)."""
        directory = self.console.users
        rows = [] if directory is None else [
            {"name": u.name, "display_name": u.display_name, "role": u.role,
             "jurisdiction": u.jurisdiction, "disabled": u.disabled}
            for u in directory.users()]
        return pd.DataFrame(rows, columns=["name", "display_name", "role", "jurisdiction",
                                           "disabled"])

    def layout(self):
        users = self.users_frame()
        note = self.t("admin.users.cli") if self.console.users is not None else \
            self.t("admin.users.none")
        main = pn.Column(
            HTML(f"<h2>{html.escape(self.t('admin.users'))}</h2><p>{html.escape(note)}</p>",
                 sizing_mode="stretch_width"),
            table(users.rename(columns={c: self.t(f"admin.col.{c}") for c in users}),
                  page_size=8),
            HTML(f"<h2>{html.escape(self.t('audit.title'))}</h2>", sizing_mode="stretch_width"),
            AuditView(source=self.console.analysis, lang=self.lang, guard=self.guard),
            sizing_mode="stretch_both", scroll=True, margin=(8, 16))
        return page(self.t("app.admin"), main, lang=self.lang, route=self.route)
