"""The one translation table of the interface: every user-facing label, Chinese and English.

Chinese is the default (the users are Chinese duty officers); English is complete too. A
test checks that every key used in the code is here, in both languages.
Keys are grouped by app; add yours to your app's section.
"""
from __future__ import annotations

LANGS = ("zh", "en")

LABELS: dict[str, tuple[str, str]] = {
    # ------------------------------------------------------------ common
    "console.title": ("智慧应急综合指挥平台", "Smart Emergency Operations Console"),
    "app.board": ("综合态势", "Situation board"),
    "app.board.desc": ("指挥大厅大屏：一张图、关键指标、事件滚动", "Command-hall video wall: one map, KPIs, event ticker"),
    "app.warnings": ("自然灾害综合监测预警", "Natural-disaster monitoring and warning"),
    "app.warnings.desc": ("气象、水文、地质、地震、森林火险监测与预警发布", "Weather, hydrology, geology, quakes, forest fire; warning issuance"),
    "app.risk": ("企业安全风险四色图", "Enterprise safety risk map"),
    "app.risk.desc": ("风险点四色分布、企业档案、县区风险指数", "Four-colour risk points, enterprise cards, county risk index"),
    "app.inventory": ("应急专家与物资", "Experts and materials"),
    "app.inventory.desc": ("专家检索与抽取、物资储备与调拨", "Expert search and draw; material stock and dispatch"),
    "app.health": ("运行状态", "Health"),
    "app.health.desc": ("数据接入与存储状态（JSON）", "Feed and store status (JSON)"),
    "index.apps": ("应用", "Apps"),
    "index.notebooks": ("分析看板", "Notebook dashboards"),
    "lang.switch": ("English", "中文"),
    "risk.red": ("重大风险", "Major risk"),
    "risk.orange": ("较大风险", "Large risk"),
    "risk.yellow": ("一般风险", "General risk"),
    "risk.blue": ("低风险", "Low risk"),
    "level.red": ("红色", "Red"),
    "level.orange": ("橙色", "Orange"),
    "level.yellow": ("黄色", "Yellow"),
    "level.blue": ("蓝色", "Blue"),
    "live.readings": ("实时监测数据", "Live readings"),
    "live.readings_count": ("已接收 {n} 条监测数据", "{n} readings received"),
    "live.rate": ("{rate:.0f} 条/秒", "{rate:.0f}/s"),
    "no_points": ("当前条件下没有风险点", "No points match the current filters"),
    "error.unknown": ("未知错误", "Unknown error"),
    # ------------------------------------------------------------ risk (/risk)
    # ------------------------------------------------------------ feeds and alarms
    # ------------------------------------------------------------ board (/board)
    # ------------------------------------------------------------ warnings (/warnings)
    # ------------------------------------------------------------ inventory (/inventory)
    # ------------------------------------------------------------ analysts (/console, notebooks)
}


def t(key: str, lang: str = "zh", **fmt) -> str:
    """The label ``key`` in ``lang`` ('zh' or 'en'), formatted with ``fmt``.

    An unknown key returns the key itself (visible in the page, caught by the tests).
    """
    pair = LABELS.get(key)
    if pair is None:
        return key
    text = pair[0] if lang == "zh" else pair[1]
    return text.format(**fmt) if fmt else text


def session_lang(default: str = "zh") -> str:
    """The language of the current page: ``?lang=en|zh`` in its URL, else ``default``."""
    import panel as pn

    args = getattr(pn.state, "session_args", None) or {}
    value = args.get("lang", [b""])[0]
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return value if value in LANGS else default
