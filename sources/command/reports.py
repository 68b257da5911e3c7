"""Reports (信息报送): a template filled from the incident, versions, HTML and DOCX exports.

A report is written in the app from a draft (:meth:`ReportActions.draft_report`: what, where,
when, casualties and losses, grade and response, the measures done, the resources
committed), edited by the officer, and submitted: ``command_reports`` keeps every version
with who submitted it. Exports are self-contained (no external resources): HTML, and DOCX
written with python-docx.
"""
from __future__ import annotations

import html
import io
from datetime import datetime

import pandas as pd

from sources.inventory.common import actor_name

from .catalog import CATEGORY_ZH, GRADE_ZH, ROMAN, SUBTYPES
from .common import CHINA_TZ, CommandError, aware, clean_text, records
from .deadlines import REPORT_KINDS

KIND_ZH = {"phone": "电话报告", "first": "首报", "followup": "续报", "final": "终报"}
KIND_EN = {"phone": "Telephone notice", "first": "First report", "followup": "Follow-up report",
           "final": "Final report"}
TASK_STATE_ZH = {"assigned": "已下达", "en_route": "在途", "on_scene": "到达现场", "done": "完成",
                 "cancelled": "已取消"}
TASK_KIND_ZH = {"team": "救援队伍", "materials": "物资", "experts": "专家", "shelter": "避难场所"}

TEMPLATE_ZH = """一、基本情况
{when}，{where}发生{what}（{category}）。{description}
二、人员伤亡和损失
截至目前，死亡 {deaths} 人、失踪 {missing} 人、重伤 {injured} 人，直接经济损失约 {loss} 万元。
三、事件分级和响应
{grade_text}{response_text}
四、已采取的措施
{measures}
五、投入力量
{resources}
六、下一步工作
（请填写）
报告人：{user}　报告时间：{now}"""

TEMPLATE_EN = """1. What happened
{when}: {what} ({category}) at {where}. {description}
2. Casualties and losses
So far {deaths} dead, {missing} missing, {injured} seriously injured; direct loss about {loss} × 10,000 yuan.
3. Grade and response
{grade_text}{response_text}
4. Measures taken
{measures}
5. Resources committed
{resources}
6. Next steps
(to be completed)
Reported by {user} at {now}"""


def local(t: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A time as China local time text ('' for None)."""
    return "" if t is None else t.astimezone(CHINA_TZ).strftime(fmt)


class ReportActions:
    """Mixin of :class:`~sources.command.source.CommandSource`: writing and exporting reports."""

    def draft_report(self, incident_id: str, kind: str = "followup", *, lang: str = "zh",
                     user: str | None = None, now: datetime | None = None) -> dict:
        """A report filled from the incident as it is now: ``{'title', 'body'}``."""
        now = aware(now) if now is not None else self.now()
        state = self.incident_state(incident_id, now=now)
        inc = state["incident"]
        st = SUBTYPES[inc["subtype"]]
        counties = self.counties().set_index("county_code")
        county = counties["name"].get(inc["county_code"], inc["county_code"])
        zh = lang == "zh"
        place = "、".join(x for x in (county, inc["place"]) if x) if zh else \
            ", ".join(x for x in (inc["place"], county) if x)
        where = f"{place}（{inc['lon']:.4f}, {inc['lat']:.4f}）" if zh else \
            f"{place} ({inc['lon']:.4f}, {inc['lat']:.4f})"
        if zh:
            grade_text = f"事件等级：{GRADE_ZH[inc['grade']]}（{ROMAN[inc['grade']]}级）"
            grade_text += (f"，依据：{inc['grade_rule']}" if inc["grade_rule"] and
                           not inc["grade_reason"] else "")
            grade_text += f"，研判理由：{inc['grade_reason']}" if inc["grade_reason"] else ""
            grade_text += "。"
            response_text = (f"已启动{ROMAN[inc['response_level']]}级应急响应（预案：{inc['plan_id']}）。"
                             if inc["response_level"] else "尚未启动应急响应。")
        else:
            grade_text = f"Grade {inc['grade']}"
            grade_text += f" (rule: {inc['grade_rule']})" if inc["grade_rule"] and \
                not inc["grade_reason"] else ""
            grade_text += f" (officer: {inc['grade_reason']})" if inc["grade_reason"] else ""
            grade_text += ". "
            response_text = (f"Level {inc['response_level']} response launched (plan "
                             f"{inc['plan_id']})." if inc["response_level"]
                             else "No response launched yet.")
        done = [p for p in state["plan"] if p["done"]]
        measures = "\n".join(
            f"{i}. {p['measure'] if zh or not p['measure_en'] else p['measure_en']}"
            f"（{p['unit']}，{p['done_by']} {local(p['done_at'], '%H:%M')}）"
            for i, p in enumerate(done, 1)) or ("（无）" if zh else "(none yet)")
        lines = []
        for t in state["tasks"]:
            qty = "" if t["quantity"] is None else f" {t['quantity']:g}{t['unit'] or ''}"
            kind = TASK_KIND_ZH[t["kind"]] if zh else t["kind"]
            status = TASK_STATE_ZH[t["state"]] if zh else t["state"].replace("_", " ")
            lines.append(f"- {kind}：{t['resource_name']}{qty}（{status}）" if zh else
                         f"- {kind}: {t['resource_name']}{qty} ({status})")
        template = TEMPLATE_ZH if zh else TEMPLATE_EN
        body = template.format(
            when=local(inc["occurred_at"]), where=where,
            what=st.zh if zh else st.key.replace("_", " "),
            category=CATEGORY_ZH[st.category] if zh else st.category,
            description=inc["description"] or "", deaths=inc["deaths"], missing=inc["missing"],
            injured=inc["injured"], loss=f"{inc['loss_wan']:g}", grade_text=grade_text,
            response_text=response_text, measures=measures,
            resources="\n".join(lines) or ("（无）" if zh else "(none yet)"),
            user=actor_name(user), now=local(now))
        title = (f"关于{inc['title']}的{KIND_ZH[kind]}" if zh else
                 f"{KIND_EN[kind]}: {inc['title']}") if kind in KIND_ZH else inc["title"]
        return {"title": title, "body": body}

    def submit_report(self, incident_id: str, kind: str, body: str, *, user: str | None,
                      title: str = "", recipient: str = "", now: datetime | None = None) -> dict:
        """Submit a report (version 1). Refused: no content, an unknown kind, a follow-up
        before the first report, a second first report, or anything but the final report
        once the incident is closed (and a final report before it is)."""
        if kind not in REPORT_KINDS:
            raise CommandError("command.error.bad_report_kind", "unknown report kind: {kind}",
                               kind=kind)
        body = clean_text(body, 200_000)
        if not body:
            raise CommandError("command.error.empty_report", "the report has no content")
        now = aware(now) if now is not None else self.now()
        actor = actor_name(user)
        with self.store.transaction() as cur:
            inc = self._current(cur, incident_id, open_only=False)
            kinds = [r[0] for r in cur.execute(
                "SELECT kind FROM command_reports WHERE incident_id = ? AND version = 1",
                [inc["incident_id"]]).fetchall()]
            closed = inc["status"] == "closed"
            if closed and kind != "final":
                raise CommandError("command.error.closed_report",
                                   "incident {id} is closed: only the final report can be filed",
                                   id=inc["incident_id"])
            if kind == "final" and not closed:
                raise CommandError("command.error.final_open",
                                   "the final report is filed after the incident is closed")
            if kind == "followup" and "first" not in kinds:
                raise CommandError("command.error.no_first", "file the first report first")
            if kind in ("first", "final", "phone") and kind in kinds:
                raise CommandError("command.error.report_exists",
                                   "the {kind} report is already filed: correct it instead",
                                   kind=kind)
            report_id = int(cur.execute("SELECT nextval('command_ids')").fetchone()[0])
            row = {"report_id": report_id, "version": 1, "incident_id": inc["incident_id"],
                   "kind": kind, "title": clean_text(title, 300) or
                   f"{KIND_ZH[kind]}：{inc['title']}", "body": body,
                   "recipient": clean_text(recipient) or None, "submitted_by": actor,
                   "submitted_at": now}
            cur.execute(f"INSERT INTO command_reports ({', '.join(row)}) VALUES "
                        f"({', '.join('?' * len(row))})", list(row.values()))
        self._publish_change(inc["incident_id"], "report", actor, now, report_id=report_id,
                             kind=kind, version=1)
        return row

    def revise_report(self, report_id: int, body: str, *, user: str | None, title: str = "",
                      now: datetime | None = None) -> dict:
        """Correct a report: its next version (the earlier ones are kept)."""
        body = clean_text(body, 200_000)
        if not body:
            raise CommandError("command.error.empty_report", "the report has no content")
        now = aware(now) if now is not None else self.now()
        actor = actor_name(user)
        with self.store.transaction() as cur:
            last = cur.execute("SELECT * FROM command_reports WHERE report_id = ? "
                               "ORDER BY version DESC LIMIT 1", [_int(report_id)]).fetch_df()
            if last.empty:
                raise CommandError("command.error.unknown_report", "unknown report: {id}",
                                   id=report_id)
            row = records(last)[0]
            if row["body"] == body and (not title or title == row["title"]):
                raise CommandError("command.error.unchanged", "the report is unchanged")
            row.update(version=row["version"] + 1, body=body, submitted_by=actor,
                       submitted_at=now, title=clean_text(title, 300) or row["title"])
            cur.execute(f"INSERT INTO command_reports ({', '.join(row)}) VALUES "
                        f"({', '.join('?' * len(row))})", list(row.values()))
        self._publish_change(row["incident_id"], "report", actor, now, report_id=row["report_id"],
                             kind=row["kind"], version=row["version"])
        return row

    def report_versions(self, report_id: int) -> pd.DataFrame:
        """Every version of a report, oldest first."""
        return self.store.df("SELECT * FROM command_reports WHERE report_id = ? ORDER BY version",
                             [_int(report_id)])

    # ------------------------------------------------------------------ exports
    def export_report(self, report_id: int, fmt: str = "html", version: int | None = None
                      ) -> bytes:
        """A report (its latest version, or ``version``) as HTML or DOCX bytes."""
        v = self.report_versions(report_id)
        if v.empty:
            raise CommandError("command.error.unknown_report", "unknown report: {id}",
                               id=report_id)
        row = records(v if version is None else v[v.version == int(version)])[-1]
        inc = self.version(row["incident_id"])
        meta = [("事件 Incident", f"{inc['title']}（{inc['incident_id']}）"),
                ("类型 Kind", f"{KIND_ZH[row['kind']]} / {KIND_EN[row['kind']]}"),
                ("版本 Version", str(row["version"])),
                ("报送人 Submitted by", row["submitted_by"]),
                ("报送时间 Submitted at", local(row["submitted_at"], "%Y-%m-%d %H:%M:%S")),
                ("报送对象 To", row["recipient"] or "")]
        return _export(row["title"], meta, row["body"].split("\n"), fmt)

    def export_review(self, incident_id: str, fmt: str = "html",
                      now: datetime | None = None) -> bytes:
        """The after-action review (总结评估) as HTML or DOCX bytes."""
        r = self.after_action(incident_id, now=now)
        inc = r["incident"]
        names = {"occurred": "事发", "learned": "接报", "response": "启动响应",
                 "first_on_scene": "首支队伍到场", "closed": "处置结束"}
        lines = ["一、关键节点 Milestones"]
        lines += [f"{names[k]} {k}: {local(t) or '—'}" for k, t in r["milestones"]]
        lines.append("二、时长 Durations (min)")
        lines += [f"{names[d['from']]} → {names[d['to']]}: {_minutes(d['minutes'])}"
                  for d in r["durations"]]
        lines.append("三、信息报送 Reports")
        lines += [f"{KIND_ZH[t['kind']]} #{t['n']}: due {local(t['due_at'])}, "
                  f"filed {local(t['done_at']) or '—'} ({t['state']})" for t in r["timers"]]
        lines.append(f"逾期或迟报 late or missing: {len(r['late_reports'])}")
        lines.append("四、投入力量 Resources")
        lines += [f"{TASK_KIND_ZH[u['kind']]} {u['kind']}: {u['tasks']} (done {u['done']}, "
                  f"cancelled {u['cancelled']}) {u['names']}" for u in r["resources"]]
        lines.append(f"五、预案措施 Plan measures done: {r['plan_done']}/{r['plan_items']}")
        meta = [("事件 Incident", f"{inc['title']}（{inc['incident_id']}）"),
                ("等级 Grade", f"{GRADE_ZH[inc['grade']]} {inc['grade']}"),
                ("响应 Response", inc["response_level"] or "—"),
                ("状态 Status", inc["status"])]
        return _export(f"总结评估 After-action review：{inc['title']}", meta, lines, fmt)


def _export(title: str, meta: list[tuple[str, str]], lines: list[str], fmt: str) -> bytes:
    if fmt == "html":
        e = html.escape
        rows = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in meta)
        body = "".join(f"<p>{e(line)}</p>" if line.strip() else "<p>&nbsp;</p>"
                       for line in lines)
        return (f'<!DOCTYPE html><html lang="zh"><head><meta charset="utf-8">'
                f"<title>{e(title)}</title><style>body{{font-family:sans-serif;max-width:48em;"
                f"margin:2em auto}}th{{text-align:left;padding-right:1em}}</style></head><body>"
                f"<h1>{e(title)}</h1><table>{rows}</table><hr>{body}</body></html>"
                ).encode()
    if fmt == "docx":
        from docx import Document
        from docx.oxml.ns import qn

        doc = Document()
        style = doc.styles["Normal"]
        style.font.name = "SimSun"
        style.element.rPr.rFonts.set(qn("w:eastAsia"), "宋体")  # CJK text in Word's own font
        doc.add_heading(title, level=1)
        table = doc.add_table(rows=0, cols=2)
        for k, v in meta:
            cells = table.add_row().cells
            cells[0].text, cells[1].text = k, str(v)
        for line in lines:
            doc.add_paragraph(line)
        buf = io.BytesIO()
        doc.save(buf)
        return buf.getvalue()
    raise CommandError("command.error.bad_format", "unknown export format: {fmt}", fmt=fmt)


def _minutes(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1
