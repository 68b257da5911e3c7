"""The alarm report: count, durations, time to acknowledge and to clear, per enterprise or county."""
from __future__ import annotations

import io
from datetime import UTC, date, datetime, time, timedelta
from typing import ClassVar

import pandas as pd
import panel as pn
import param

from sources.alarms.desk import AlarmSource

from .base import View
from .panes import HTML

REPORT_COLUMNS = ["name", "county", "alarms", "red", "total_duration_min", "mean_duration_min",
                  "mean_ack_min", "mean_clear_min"]
LOCAL = timedelta(hours=8)  # dates are picked in China time (UTC+8)


class AlarmReport(View):
    """Alarms per enterprise or county over a period of days, as a table and a CSV file."""

    view_type: ClassVar[str] = "alarm_report"

    source = param.ClassSelector(class_=AlarmSource, doc="The alarm desk source.")
    by = param.Selector(default="enterprise", objects=["enterprise", "county"],
                        doc="Group the report per enterprise (or station) or per county.")
    start = param.Date(default=None, allow_None=True, doc="First day (China time); default: 7 days ago.")
    end = param.Date(default=None, allow_None=True, doc="Last day, inclusive; default: today.")

    def __init__(self, **params):
        today = (datetime.now(UTC) + LOCAL).date()
        params["start"] = params.get("start") or today - timedelta(days=6)
        params["end"] = params.get("end") or today
        super().__init__(**params)
        t = self.t
        self.by_select = pn.widgets.RadioButtonGroup.from_param(
            self.param.by, options={t("alarm.report.by_enterprise"): "enterprise",
                                    t("alarm.report.by_county"): "county"})
        self.start_picker = pn.widgets.DatePicker.from_param(self.param.start,
                                                             label=t("alarm.report.start"))
        self.end_picker = pn.widgets.DatePicker.from_param(self.param.end,
                                                           label=t("alarm.report.end"))
        self.table = pn.widgets.Tabulator(self.frame(), show_index=False, disabled=True,
                                          sizing_mode="stretch_both", min_height=300,
                                          layout="fit_data_stretch")
        self.download = pn.widgets.FileDownload(callback=self._csv, filename="alarm-report.csv",
                                                label=t("alarm.report.csv"), color="primary")
        self.empty = HTML(t("alarm.report.empty"), visible=self.table.value.empty)

    def period(self) -> tuple[datetime, datetime]:
        """``[start, end)`` as UTC datetimes of the chosen China-time days."""
        start = datetime.combine(_as_date(self.start), time(), UTC) - LOCAL
        end = datetime.combine(_as_date(self.end) + timedelta(days=1), time(), UTC) - LOCAL
        return start, end

    def frame(self) -> pd.DataFrame:
        """The report with localised column titles, durations rounded to 0.1 min."""
        start, end = self.period()
        df = self.source.report(self.by, start, end, scope=self.guard.scope())
        cols = [c for c in REPORT_COLUMNS if c in df.columns]
        df = df[cols].round(1)
        return df.rename(columns={c: self.t(f"alarm.rep.{c}") for c in cols})

    @param.depends("by", "start", "end", watch=True)
    def _update(self) -> None:
        self.table.value = self.frame()
        self.empty.visible = self.table.value.empty
        self.download.filename = f"alarm-report-{self.by}-{self.start}-{self.end}.csv"

    def _csv(self) -> io.StringIO:
        buf = io.StringIO()
        buf.write("\ufeff")  # so that Excel opens the Chinese names as UTF-8
        frame = self.frame()  # the user's jurisdiction only
        frame.to_csv(buf, index=False)
        self.guard.record("export", target=f"alarm_report:{self.by}",
                          details={"rows": len(frame), "start": str(self.start),
                                   "end": str(self.end)})
        buf.seek(0)
        return buf

    def __panel__(self):
        return pn.Column(
            pn.Row(self.by_select, self.start_picker, self.end_picker, self.download),
            self.empty, self.table, sizing_mode="stretch_both", css_classes=["alarm-report"])


def _as_date(d) -> date:
    return d.date() if isinstance(d, datetime) else d
