"""The console's page shell and CSS: no CDN, no web fonts, system CJK fonts only.

Every page is one document in one language: :func:`declare_page` gives the served HTML its
``<html lang>`` and a ``<title>`` in that language (Panel's own template says ``lang="en"``
and takes the title given to ``pn.serve`` once per route), and installs ``a11y.js``, which
names the controls the libraries leave unnamed. :func:`page` lays a page out with its
landmarks: a ``header`` (the console's name, the page's ``h1``, the ``nav`` of the apps and
the language switch) and one ``main`` region holding the rest.
"""
from __future__ import annotations

import functools
import logging
import re
from pathlib import Path

import panel as pn
import param

from views.i18n import t
from views.panes import HTML

CSS = (Path(__file__).with_name("console.css")).read_text(encoding="utf-8")
A11Y_JS = (Path(__file__).with_name("a11y.js")).read_text(encoding="utf-8")

NAV = ("board", "warnings", "risk", "alarms", "command", "inventory", "drills", "console")
#: BCP 47 tag of each interface language, for ``<html lang>`` and ``lang`` on other-language text.
HTML_LANG = {"zh": "zh-CN", "en": "en"}
#: Names ``a11y.js`` gives to controls that show none (labels of :mod:`views.i18n`).
A11Y_LABELS = ("increase", "decrease", "select_row", "select_all", "player_position",
               "player_first", "player_previous", "player_reverse", "player_pause",
               "player_play", "player_next", "player_last", "player_slower", "player_faster")

log = logging.getLogger(__name__)


class Landmark(pn.Row):
    """A row that is a landmark region (``role``) for assistive technology."""

    html_attributes = param.Dict(default={}, doc="HTML attributes of the row's element "
                                                 "(Bokeh ``StyledElement.html_attributes``).")


class LandmarkColumn(pn.Column):
    """A column that is a landmark region (``role``) for assistive technology."""

    html_attributes = param.Dict(default={}, doc="HTML attributes of the column's element "
                                                 "(Bokeh ``StyledElement.html_attributes``).")


@functools.cache
def page_template():
    """Panel's page template with ``<html lang>`` and ``<title>`` taken from the document.

    Panel's ``base.html`` writes ``lang="en"`` outside any block, so it cannot be extended;
    this is its text with the two places made variables (``html_lang``, ``page_title``).
    None (Panel's own template) if a Panel upgrade changed them: the browser tests say so.
    """
    from panel.io.resources import BASE_TEMPLATE, _env

    text = Path(BASE_TEMPLATE.filename).read_text(encoding="utf-8")
    lang = re.compile(r'<html lang="en"')
    title = re.compile(r'\{% block title %\}.*?\{% endblock %\}')
    if not (lang.search(text) and title.search(text)):
        log.warning("Panel's page template changed: pages keep lang=en and the route title")
        return None
    text = lang.sub('<html lang="{{ html_lang | default(\'en\', true) | e }}"', text, count=1)
    text = title.sub('{% block title %}{{ (page_title or title or "") | e }}{% endblock %}',
                     text, count=1)
    return _env.from_string(text)


def declare_page(title: str, lang: str) -> None:
    """Give this session's page its language and title, and install ``a11y.js``.

    Does nothing outside a served session (a notebook, a test rendering the layout).
    """
    doc = pn.state.curdoc
    if doc is None or doc.session_context is None:
        return
    template = page_template()
    if template is not None:
        doc.template = template
    site = t("console.title", lang)
    doc.template_variables.update(
        html_lang=HTML_LANG.get(lang, lang),
        page_title=title if title == site else f"{title} · {site}")
    if not getattr(doc, "_console_a11y", False):  # once per document
        from bokeh.models import CustomJS

        doc._console_a11y = True
        labels = {key: t("a11y." + key, lang) for key in A11Y_LABELS}
        doc.js_on_event("document_ready", CustomJS(args={"labels": labels}, code=A11Y_JS))


def header_html(title: str, *, lang: str, route: str | None) -> str:
    """The banner: the console's name, the page's one ``h1``, the apps and the language."""
    other = "en" if lang == "zh" else "zh"
    links = "".join(
        f'<a class="nav-link{" active" if r == route else ""}" href="./{r}?lang={lang}"'
        f'{" aria-current=page" if r == route else ""}>{t("app." + r, lang)}</a>'
        for r in NAV
    )
    switch = (f'<a class="nav-lang" href="?lang={other}" lang="{HTML_LANG[other]}" '
              f'hreflang="{HTML_LANG[other]}">{t("lang.switch", lang)}</a>')
    return (f'<header class="console-header"><a class="brand" href="./?lang={lang}">'
            f'{t("console.title", lang)}</a><h1 class="page-title">{title}</h1>'
            f'<nav aria-label="{t("a11y.nav", lang)}">{links}</nav>{switch}</header>')


def page(
    title: str,
    main,
    *,
    lang: str = "zh",
    route: str | None = None,
    sidebar=None,
    dark: bool = False,
    header_extra=None,
) -> pn.viewable.Viewable:
    """Wrap a dashboard's content in the console's shell: a header with the apps and language.

    ``main`` fills the rest of the viewport; ``sidebar`` (optional) sits at its left. The
    two together are the page's ``main`` landmark.
    """
    declare_page(title, lang)
    header = pn.Row(
        HTML(
            header_html(title, lang=lang, route=route),
            sizing_mode="stretch_width",
            margin=0,
            stylesheets=[CSS],  # each pane has its own shadow root: style it directly
        ),
        *([header_extra] if header_extra is not None else []),
        sizing_mode="stretch_width",
        css_classes=["console-header-row"],
        margin=0,
    )
    body = Landmark(
        *([sidebar] if sidebar is not None else []),
        main,
        sizing_mode="stretch_both",
        margin=0,
        css_classes=["console-body"],
        html_attributes={"role": "main"},
    )
    return pn.Column(
        header,
        body,
        sizing_mode="stretch_both",
        stylesheets=[CSS],
        css_classes=["console-page", "dark" if dark else "light"],
        margin=0,
    )
