"""The duty desk of the past week: who was on duty, and how the officers worked the alarms
(acknowledge -> dispose -> close, as :mod:`sources.alarm_desk` records them) while the
system escalated the red alarms nobody acknowledged within 15 minutes."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa

from data.laws import CST

from .base import MINUTE_S, Past

SYSTEM = "system"
ESCALATE_AFTER_S = 15 * MINUTE_S  # sources.alarm_desk.AlarmSource.escalate_after_min
ESCALATION_TIMER_S = 10.0         # the console checks escalation every ten seconds
# Three shifts a day (China time), two officers each: the provincial duty desk (值班室).
ROSTER = {
    0: ("王建国", "李秀英"),   # 08:00-16:00
    1: ("张志强", "刘海燕"),   # 16:00-24:00
    2: ("陈明辉", "赵晓雯"),   # 00:00-08:00
}
OFFICERS = tuple(name for pair in ROSTER.values() for name in pair)
NOTES = {
    "toxic_gas": ["现场检测确认阀门法兰泄漏，已关闭阀门并启动喷淋稀释，浓度回落",
                  "已通知企业启动应急预案，现场人员佩戴空呼排查，泄漏点已封堵",
                  "探测器受检修作业影响，已核实无泄漏，要求企业规范作业票管理"],
    "flammable_gas": ["已排查泄漏点并加强通风，可燃气体浓度回落至正常",
                      "企业已停止装卸作业，切断气源，现场无点火源",
                      "探测器零点漂移，已安排标定"],
    "temperature": ["已启动冷却水系统，温度回落", "企业已降低负荷运行，温度恢复正常",
                    "测温元件故障，已更换"],
    "pressure": ["已开启泄压阀，压力恢复正常", "企业已调整工艺参数，压力回落",
                 "变送器引压管堵塞，已疏通"],
    "tank_level": ["已停止进料并倒罐，液位回落", "已通知企业核对收发油计划，液位恢复正常",
                   "液位计故障，已切换备用液位计"],
    "rain": ["已通知乡镇防汛责任人加强巡查，转移低洼地带群众",
             "已提醒相关县区做好山洪和地质灾害防范"],
    "river_level": ["已通知沿河乡镇做好人员转移准备，加强堤防巡查",
                    "已通知水文部门加密监测，防汛队伍已预置"],
    "reservoir_level": ["已通知水库管理单位按调度方案泄洪，下游群众已预警",
                        "已派员到库区督导，加强大坝巡查"],
}
DEFAULT_NOTES = ["已核实情况并通知相关单位处置"]


def officer_on_duty(t: float, rng: np.random.Generator) -> str:
    """One of the two officers of the shift at epoch seconds ``t`` (China time)."""
    hour = dt.datetime.fromtimestamp(t, CST).hour
    shift = 0 if 8 <= hour < 16 else 1 if hour >= 16 else 2
    return ROSTER[shift][int(rng.integers(2))]


def _minutes(rng, median: float, sigma: float = 0.7) -> float:
    return float(rng.lognormal(np.log(median), sigma)) * MINUTE_S


def work_alarms(past: Past, store, scripted: dict[str, str]) -> dict[str, int]:
    """Apply the officers' lifecycle to the engine's alarms, as it stood at ``past.end``.

    Parameters
    ----------
    scripted : dict
        Role (``escalated``, ``acknowledged``, ``disposed``, ``raised``) by sensor id of the
        excursions placed in the last two hours; their alarms stop at that state.

    Returns
    -------
    dict
        Count of the alarms by state at the end.
    """
    rng = past.rng("duty/alarms")
    a = store.df(
        "SELECT a.alarm_id, a.sensor_id, a.level, epoch_us(a.raised_at) / 1e6 AS raised, "
        "epoch_us(a.cleared_at) / 1e6 AS cleared, s.kind AS sensor_kind, "
        "(SELECT min(epoch_us(x.acted_at)) / 1e6 FROM alarm_actions x WHERE x.alarm_id = "
        "a.alarm_id AND x.action = 'upgrade') AS red_since "
        "FROM alarms a JOIN sensors s USING (sensor_id) ORDER BY a.alarm_id")
    end = past.end
    updates, actions = [], []
    for row in a.itertuples(index=False):
        raised = row.raised
        cleared = None if pd.isna(row.cleared) else float(row.cleared)
        red_from = raised if row.level == "red" and pd.isna(row.red_since) else row.red_since
        role = scripted.get(row.sensor_id) if raised > end - 3 * 3600 else None
        late = row.level == "red" and rng.random() < 0.12  # nobody there: escalated
        ack = raised + (ESCALATE_AFTER_S + _minutes(rng, 6) if late else
                        _minutes(rng, 4 if row.level == "red" else 8))
        disposed = ack + _minutes(rng, 12)
        closed = max(disposed, cleared if cleared is not None else np.inf) + _minutes(rng, 5)
        if role == "escalated":
            ack = disposed = closed = np.inf
        elif role == "acknowledged":
            ack, disposed, closed = raised + 4 * MINUTE_S, np.inf, np.inf
        elif role == "disposed":
            ack, disposed, closed = raised + 3 * MINUTE_S, raised + 15 * MINUTE_S, np.inf
        elif role == "raised":
            ack = disposed = closed = np.inf
        u = {"alarm_id": int(row.alarm_id), "state": "raised"}
        if red_from is not None and not pd.isna(red_from):
            due = max(raised + ESCALATE_AFTER_S, float(red_from)) + rng.uniform(0, ESCALATION_TIMER_S)
            if due < min(ack, end):
                u["escalated_at"] = due
                actions.append((u["alarm_id"], "escalate", SYSTEM, due, None))
        for step, at, by_col, at_col, state in (("acknowledge", ack, "acked_by", "acked_at",
                                                 "acknowledged"),
                                                ("dispose", disposed, "disposed_by",
                                                 "disposed_at", "disposed"),
                                                ("close", closed, "closed_by", "closed_at",
                                                 "closed")):
            if not at <= end:
                break
            who = officer_on_duty(at, rng)
            note = None
            if step == "dispose":
                notes = NOTES.get(row.sensor_kind, DEFAULT_NOTES)
                note = notes[int(rng.integers(len(notes)))]
                u["disposal_note"] = note
            u.update({"state": state, by_col: who, at_col: at})
            actions.append((u["alarm_id"], step, who, at, note))
        updates.append(u)
    _write(store, updates, actions)
    return pd.Series([u["state"] for u in updates], dtype=object).value_counts().to_dict()


def _write(store, updates: list[dict], actions: list[tuple]) -> None:
    if not updates:
        return
    cols = ["state", "acked_by", "acked_at", "disposed_by", "disposed_at", "disposal_note",
            "closed_by", "closed_at", "escalated_at"]
    df = pd.DataFrame(updates).reindex(columns=["alarm_id", *cols])
    ts = pa.timestamp("us", tz="UTC")
    table = pa.table({
        "alarm_id": pa.array(df["alarm_id"], pa.int64()),
        **{c: pa.array([v if isinstance(v, str) else None for v in df[c]], pa.string())
           for c in ("state", "acked_by", "disposed_by", "disposal_note", "closed_by")},
        **{c: pa.array(np.round(np.nan_to_num(df[c].to_numpy(dtype=float)) * 1e6)
                       .astype("int64"), pa.int64(), mask=df[c].isna().to_numpy()).cast(ts)
           for c in ("acked_at", "disposed_at", "closed_at", "escalated_at")},
    })
    act = pd.DataFrame(actions, columns=["alarm_id", "action", "actor", "at", "note"])
    act_table = pa.table({
        "alarm_id": pa.array(act["alarm_id"], pa.int64()),
        "action": pa.array(act["action"], pa.string()),
        "actor": pa.array(act["actor"], pa.string()),
        "acted_at": pa.array(np.round(act["at"].to_numpy(dtype=float) * 1e6).astype("int64"),
                             pa.int64()).cast(ts),
        "note": pa.array([v if isinstance(v, str) else None for v in act["note"]], pa.string()),
    })
    with store.transaction() as cur:
        cur.register("__duty", table)
        try:
            cur.execute(
                "UPDATE alarms SET state = d.state, acked_by = d.acked_by, acked_at = d.acked_at,"
                " disposed_by = d.disposed_by, disposed_at = d.disposed_at, "
                "disposal_note = d.disposal_note, closed_by = d.closed_by, "
                "closed_at = d.closed_at, escalated_at = d.escalated_at "
                "FROM __duty d WHERE alarms.alarm_id = d.alarm_id")
        finally:
            cur.unregister("__duty")
        store.insert("alarm_actions", act_table, cur=cur)
