"""axe-core in the browser: the accessibility engine the pages are held to.

``tests/references/axe-core/axe.min.js`` is axe-core 4.14.1 from the npm registry, vendored
unchanged with its licence (MPL-2.0) so the suite needs no npm. :func:`audit` injects it into
a Playwright page and runs the WCAG 2.0 / 2.1 level A and AA rules, plus the three structure
rules axe files under best practice (one ``main`` landmark, a level-one heading, no duplicate
``main``), which WCAG 1.3.1 and 2.4.1 ask for in substance.
"""
from __future__ import annotations

from pathlib import Path

AXE_JS = Path(__file__).resolve().parents[1] / "references" / "axe-core" / "axe.min.js"
#: The WCAG 2.0 and 2.1 success criteria at levels A and AA.
WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
#: Structure rules of axe's best practices that the pages must pass too.
STRUCTURE_RULES = ("landmark-one-main", "page-has-heading-one", "landmark-no-duplicate-main")
#: Impacts that fail a page.
BLOCKING = ("critical", "serious")

RUN_JS = """
async ([tags, extra]) => {
  const rules = axe.getRules(tags).map(r => r.ruleId).concat(extra);
  const r = await axe.run(document, {runOnly: {type: 'rule', values: rules},
                                     resultTypes: ['violations']});
  return r.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => ({target: JSON.stringify(n.target), html: n.html.slice(0, 160),
                              summary: n.failureSummary.slice(0, 240)}))}));
}
"""

# Every element, through open shadow roots (each Panel pane has its own), in document order.
DEEP_JS = """
(sel) => {
  const out = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.matches(sel)) out.push(el);
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  return out.filter(el => el.getClientRects().length > 0).map(el => ({
    tag: el.tagName.toLowerCase(), role: el.getAttribute('role'),
    text: (el.textContent || '').trim().slice(0, 80)}));
}
"""


def inject(page) -> None:
    """Load axe-core into ``page`` (once; a reload needs it again)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE_JS))


def audit(page) -> list[dict]:
    """Every violation axe finds on the page as it is now (all impacts)."""
    inject(page)
    return page.evaluate(RUN_JS, [list(WCAG_TAGS), list(STRUCTURE_RULES)])


def blocking(violations: list[dict]) -> list[dict]:
    """The violations that fail a page: critical or serious, and the structure rules."""
    return [v for v in violations if v["impact"] in BLOCKING or v["id"] in STRUCTURE_RULES]


def deep(page, selector: str) -> list[dict]:
    """Visible elements matching ``selector`` anywhere in the page, shadow roots included."""
    return page.evaluate(DEEP_JS, selector)


def describe(violations: list[dict], where: str) -> str:
    """A readable account of violations for a failure message."""
    lines = []
    for v in violations:
        lines.append(f"{where}: {v['impact']} {v['id']} ({len(v['nodes'])}): {v['help']}")
        for n in v["nodes"][:3]:
            lines.append(f"    {n['target']}  {n['html']}\n      {n['summary']}")
    return "\n".join(lines)
