"""What an incident can be and what it needs: categories, subtypes, grades, response levels.

The four categories are those of the Emergency Response Law (突发事件应对法); the subtypes are
the ones emergency bureaus file incidents under. The feed's incident kinds (``fire``,
``hazchem_leak``, ``traffic_accident``, ``flood``, ``landslide``, ``explosion``) are subtypes
here, so a feed incident taken over keeps its kind. Each subtype says what decision support
looks for: team specialties, material categories, expert tags and types, the affected radius,
and whether the affected area is the downwind sector (gas releases).
"""
from __future__ import annotations

from dataclasses import dataclass

CATEGORIES = ("natural", "accident", "health", "social")
CATEGORY_ZH = {"natural": "自然灾害", "accident": "事故灾难", "health": "公共卫生事件",
               "social": "社会安全事件"}

#: Grades of an incident, most severe first, with their official colour.
GRADES = ("I", "II", "III", "IV")
GRADE_ZH = {"I": "特别重大", "II": "重大", "III": "较大", "IV": "一般"}
GRADE_COLOR = {"I": "red", "II": "orange", "III": "yellow", "IV": "blue"}
COLOR_GRADE = {v: k for k, v in GRADE_COLOR.items()}
#: Response levels (Ⅰ–Ⅳ级应急响应), same codes as grades.
RESPONSE_LEVELS = GRADES
ROMAN = {"I": "Ⅰ", "II": "Ⅱ", "III": "Ⅲ", "IV": "Ⅳ"}


@dataclass(frozen=True)
class Subtype:
    """One kind of incident and what it calls for."""

    key: str
    category: str
    zh: str
    teams: tuple[str, ...]           # rescue_teams.kind worth sending, best first
    materials: tuple[str, ...]       # material_kinds.category needed
    expert_tags: tuple[str, ...]     # expert_tags.tag worth drawing
    expert_type: str | None          # experts.type of the draw (None: any)
    radius_km: float                 # affected radius around the scene
    downwind: bool = False           # affected area is the downwind sector (gas release)


SUBTYPES: dict[str, Subtype] = {s.key: s for s in (
    # 事故灾难 (production safety: the State Council grade rule applies)
    Subtype("fire", "accident", "火灾", ("fire", "medical"), ("fire", "rescue", "medical"),
            ("消防安全", "消防救援", "电气安全"), "safety", 1.0),
    Subtype("hazchem_leak", "accident", "危险化学品泄漏", ("hazchem", "fire", "medical"),
            ("hazchem", "medical", "rescue"),
            ("危险化学品", "危化品救援", "堵漏", "洗消", "环境监测"), "safety", 3.0, downwind=True),
    Subtype("explosion", "accident", "爆炸", ("fire", "hazchem", "medical"),
            ("fire", "hazchem", "rescue", "medical"),
            ("危险化学品", "粉尘防爆", "民用爆炸物品", "建筑坍塌救援"), "safety", 2.0),
    Subtype("mine", "accident", "矿山事故", ("mine", "medical"), ("rescue", "medical", "power"),
            ("非煤矿山", "地下矿山", "矿山救援", "尾矿库"), "safety", 2.0),
    Subtype("traffic_accident", "accident", "道路交通事故", ("fire", "medical"),
            ("rescue", "medical"), ("交通事故救援", "危货运输", "医疗救护"), "rescue", 0.5),
    Subtype("collapse", "accident", "建筑坍塌", ("fire", "volunteer", "medical"),
            ("rescue", "medical", "living"), ("建筑坍塌救援", "建筑施工", "破拆技术"), "rescue", 0.5),
    Subtype("gas_explosion", "accident", "燃气爆炸", ("fire", "medical"),
            ("fire", "rescue", "medical"), ("燃气安全", "城市生命线", "建筑坍塌救援"), "safety", 1.0),
    # 自然灾害
    Subtype("flood", "natural", "洪涝灾害", ("flood", "volunteer", "medical"),
            ("flood", "living", "rescue", "power"), ("防汛抗旱", "城市内涝", "堤防工程", "水上救援"),
            "natural", 10.0),
    Subtype("landslide", "natural", "滑坡/地质灾害", ("volunteer", "fire", "medical"),
            ("rescue", "living", "medical"), ("地质灾害", "滑坡", "泥石流", "山地救援"),
            "natural", 3.0),
    Subtype("earthquake", "natural", "地震灾害", ("fire", "medical", "volunteer"),
            ("rescue", "living", "medical", "communication"),
            ("地震", "地震工程", "建筑坍塌救援", "转移安置"), "natural", 30.0),
    Subtype("forest_fire", "natural", "森林火灾", ("forest_fire", "fire", "medical"),
            ("fire", "living", "communication"), ("森林防火", "森林扑火", "遥感监测"), "natural", 5.0),
    Subtype("snowstorm", "natural", "雪灾冰冻", ("power", "volunteer", "medical"),
            ("living", "power"), ("暴雪", "低温冻害", "电力保障"), "natural", 20.0),
    # 公共卫生事件
    Subtype("epidemic", "health", "传染病疫情", ("medical",), ("medical", "living"),
            ("公共卫生", "卫生防疫", "医疗救护"), None, 5.0),
    Subtype("food_poisoning", "health", "群体性食物中毒", ("medical",), ("medical",),
            ("公共卫生", "医疗救护"), None, 1.0),
    # 社会安全事件
    Subtype("mass_gathering", "social", "人员聚集/踩踏", ("medical", "volunteer"),
            ("medical", "rescue"), ("人员疏散", "医疗救护", "心理援助"), None, 1.0),
    Subtype("public_security", "social", "社会安全事件", ("medical", "volunteer"),
            ("medical", "communication"), ("社会治理", "舆情应对", "心理援助"), None, 1.0),
)}


def subtype(key: str) -> Subtype | None:
    """The subtype ``key`` (None if unknown)."""
    return SUBTYPES.get(key)


def subtypes_of(category: str) -> list[str]:
    """The subtype keys of a category, in catalogue order."""
    return [k for k, s in SUBTYPES.items() if s.category == category]
