"""物资调拨: request → approve → ship → receive, with the movements ledger."""
from __future__ import annotations

import html

import pandas as pd
import panel as pn
import param

from sources.inventory.materials import MaterialSource

from .base import View
from .inventory_common import Notice, options, table, translate
from .panes import HTML, Markdown
from .styles import ACTION_CSS

STATUS_STYLE = {"requested": "#fff7e6", "approved": "#e8f0fe", "shipped": "#ecfdf5",
                "received": "#f1f5f9", "rejected": "#fde2e2"}


def status_badges(states: pd.Series, t) -> pd.Series:
    """Coloured status labels (HTML of our own labels, escaped), one per distinct state."""
    badge = {s: f'<span style="background:{STATUS_STYLE.get(s, "#fff")};padding:0 6px;'
                f'border-radius:3px">{html.escape(t("inventory.status." + s))}</span>'
             for s in states.dropna().unique()}
    return states.map(badge)


class DispatchDesk(View):
    """The dispatch desk: a request form, the dispatches with their next step, the ledger."""

    view_type = "dispatch"

    source = param.ClassSelector(class_=MaterialSource, doc="The material inventory source.")

    def __init__(self, **params):
        super().__init__(**params)
        t, src = self.t, self.source
        kinds = src.kinds()
        kinds["label"] = kinds["name"] + " (" + kinds["unit"] + ")"
        wh = src.warehouses()[["warehouse_id", "name"]]
        mine = [w for w, c in self._warehouse_counties().items() if self.guard.sees(c)]
        self.kind = pn.widgets.Select(label=t("inventory.kind"),
                                      options=options(kinds, "kind_id", "label"),
                                      css_classes=["inv-dispatch-kind"], width=200)
        self.quantity = pn.widgets.FloatInput(label=t("inventory.quantity"), value=None,
                                              css_classes=["inv-dispatch-qty"], width=110)
        self.from_wh = pn.widgets.Select(label=t("inventory.dispatch.from"),
                                         options=options(wh, "warehouse_id", "name"),
                                         css_classes=["inv-dispatch-from"], width=200)
        self.to_wh = pn.widgets.Select(label=t("inventory.dispatch.to"),
                                       options=options(wh, "warehouse_id", "name",
                                                       blank=t("inventory.dispatch.place")),
                                       css_classes=["inv-dispatch-to"], width=200)
        if self.guard.scope() is not None and mine:  # to the officer's own warehouse
            self.to_wh.value = mine[0]
        self.destination = pn.widgets.TextInput(label=t("inventory.dispatch.destination"),
                                                placeholder=t("inventory.dispatch.dest.hint"),
                                                css_classes=["inv-dispatch-dest"], width=200)
        self.request_button = pn.widgets.Button(label=t("inventory.dispatch.request"),
                                                color="primary", align="end",
                                                css_classes=["inv-dispatch-request"])
        self.notice = Notice(t, "inv-dispatch-notice")
        self.held = HTML("", css_classes=["inv-dispatch-held"], align="end")
        for w in (self.kind, self.from_wh):
            w.param.watch(lambda _e: self._show_held(), "value")
        self.list = table(page_size=10, selectable=1, css_class="inv-dispatch-list",
                          titles={**{c: t(f"inventory.col.{c}") for c in (
                              "dispatch_id", "status", "kind", "unit",
                              "from_warehouse", "destination", "requester", "requested_at",
                              "approved_by", "shipped_by", "received_by")},
                              "quantity": t("inventory.quantity")},
                          formatters={"status": {"type": "html"}})
        self.buttons = {
            step: pn.widgets.Button(label=t(f"inventory.dispatch.{step}"),
                                    css_classes=[f"inv-dispatch-{step}"],
                                    color="success" if step != "reject" else "light",
                                    stylesheets=[ACTION_CSS])
            for step in ("approve", "ship", "receive", "reject")}
        for step, button in self.buttons.items():
            button.on_click(lambda _e, step=step: self.act(step))
        self.moves = table(page_size=10, css_class="inv-dispatch-moves",
                           titles={c: t(f"inventory.col.{c}") for c in (
                               "entry_id", "moved_at", "warehouse", "kind", "delta", "unit",
                               "reason", "dispatch_id", "actor")})
        self.request_button.on_click(lambda _e: self.request())
        self._units = dict(zip(kinds["kind_id"], kinds["unit"], strict=True))
        self._show_held()
        self.subscribe(["stock", "dispatch"], lambda _m, _missed: self.refresh(),
                       period_ms=1000)
        self.refresh()

    # ------------------------------------------------------------------ actions
    def request(self) -> int | None:
        """File the request in the form (the logged-in user is the requester)."""
        dispatch_id = self.notice.run(
            lambda: self.guard.act(
                "dispatch.request", lambda who: self.source.request_dispatch(
                    kind_id=self.kind.value, quantity=self.quantity.value,
                    from_warehouse_id=self.from_wh.value,
                    to_warehouse_id=self.to_wh.value or None,
                    destination=self.destination.value, requester=who),
                county=self._request_county(), target="dispatch:new",
                details={"kind_id": self.kind.value, "quantity": self.quantity.value,
                         "from": self.from_wh.value}),
            lambda d: self.t("inventory.dispatch.requested", id=d))
        self.refresh(select=dispatch_id)
        return dispatch_id

    def act(self, step: str, dispatch_id: int | None = None) -> bool:
        """Move the selected dispatch one step; a refusal is shown, nothing changes."""
        if dispatch_id is None:
            sel = self.list.selection
            if not sel:
                self.notice.refuse(self.t("inventory.dispatch.pick"))
                return False
            dispatch_id = int(self.list.value.iloc[sel[0]].dispatch_id)
        action = getattr(self.source, step)
        row = self.source.dispatches().set_index("dispatch_id").loc[dispatch_id]
        # the shipping warehouse's jurisdiction approves and ships; the receiving one signs
        receiving = step == "receive" and not pd.isna(row.to_warehouse_id)
        where = int(row.to_warehouse_id if receiving else row.from_warehouse_id)
        done = self.notice.run(
            lambda: self.guard.act(
                f"dispatch.{step}", lambda who: action(dispatch_id, actor=who) or True,
                county=self._county_of(where),
                target=f"dispatch:{dispatch_id}", requested_by=row.requester,
                shipped_by=row.shipped_by if isinstance(row.shipped_by, str) else None),
            lambda _r: self.t(f"inventory.dispatch.{step}.done", id=dispatch_id))
        self.refresh(select=dispatch_id)
        return done is not None

    def _request_county(self) -> str:
        """Where a request is for: the destination warehouse's county, else the requester's
        own area (a place typed in). Mutual aid: a county may ask any warehouse of the
        province; the warehouse's own jurisdiction approves and ships (see :meth:`act`)."""
        county = self._county_of(self.to_wh.value) if self.to_wh.value else None
        return county or self.guard.jurisdiction

    def _warehouse_counties(self) -> dict[int, str]:
        reg = self.source.warehouse_registry()
        return {int(w): str(c) for w, c in zip(reg.warehouse_id, reg.county_code, strict=True)}

    def _county_of(self, warehouse_id) -> str | None:
        """The county of a warehouse: an officer acts on the warehouses of his jurisdiction."""
        reg = self.source.warehouse_registry().set_index("warehouse_id")
        try:
            return str(reg.at[int(warehouse_id), "county_code"])
        except (KeyError, TypeError, ValueError):
            return None

    # ------------------------------------------------------------------ display
    def _show_held(self) -> None:
        rows = self.source.stock(kind_id=self.kind.value, warehouse_id=self.from_wh.value)
        held = float(rows["quantity"].iloc[0]) if len(rows) else 0.0
        self.held.object = html.escape(self.t("inventory.dispatch.held", held=held,
                                              unit=self._units.get(self.kind.value, "")))

    def refresh(self, select: int | None = None) -> None:
        """Reload the dispatches and the movements (keeps or sets the selected row)."""
        keep = select
        if keep is None and self.list.selection and len(self.list.value):
            keep = int(self.list.value.iloc[self.list.selection[0]].dispatch_id)
        d = self.source.dispatches()
        m = self.source.movements()
        if self.guard.scope() is not None:
            # the dispatches that concern the jurisdiction: from or to its warehouses, or
            # requested by the officer; and the movements of its warehouses and of those
            where = self._warehouse_counties()
            def ours(w) -> bool:
                return not pd.isna(w) and self.guard.sees(where.get(int(w)))
            d = d.loc[[ours(f) or ours(t) or r == self.guard.name for f, t, r in
                   zip(d.from_warehouse_id, d.to_warehouse_id, d.requester, strict=True)]]
            d = d.reset_index(drop=True)
            m = m.loc[[ours(w) or (not pd.isna(x) and int(x) in set(d.dispatch_id))
                   for w, x in zip(m.warehouse_id, m.dispatch_id, strict=True)]]
        d["status"] = status_badges(d["status"], self.t)
        d["requested_at"] = d["requested_at"].dt.strftime("%m-%d %H:%M:%S")
        self.list.value = d[["dispatch_id", "status", "kind", "quantity", "unit",
                             "from_warehouse", "destination", "requester", "requested_at",
                             "approved_by", "shipped_by", "received_by"]]
        if keep is not None:
            rows = d.index[d.dispatch_id == keep].tolist()
            self.list.selection = rows[:1]
        self._show_held()
        m = m.copy()
        m["moved_at"] = m["moved_at"].dt.strftime("%m-%d %H:%M:%S")
        m["reason"] = translate(m["reason"], self.t, "inventory.reason.")
        self.moves.value = m[["entry_id", "moved_at", "warehouse", "kind", "delta", "unit",
                              "reason", "dispatch_id", "actor"]]

    def __panel__(self):
        t = self.t
        return pn.Column(
            Markdown(f"#### {t('inventory.dispatch.title')}"),
            pn.Row(self.kind, self.quantity, self.from_wh, self.to_wh, self.destination,
                   self.request_button, self.held),
            pn.Row(*self.buttons.values()),
            self.notice.pane, self.list,
            Markdown(f"#### {t('inventory.dispatch.moves')}"), self.moves,
            sizing_mode="stretch_width")
