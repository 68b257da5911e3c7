"""The console's page shell and CSS: no CDN, no web fonts, system CJK fonts only."""
from __future__ import annotations

from pathlib import Path

import panel as pn

from views.i18n import t
from views.panes import HTML

CSS = (Path(__file__).with_name("console.css")).read_text(encoding="utf-8")

NAV = ("board", "warnings", "risk", "alarms", "inventory", "console")


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

    ``main`` fills the rest of the viewport; ``sidebar`` (optional) sits at its left.
    """
    other = "en" if lang == "zh" else "zh"
    links = " ".join(
        f'<a class="nav-link{" active" if r == route else ""}" href="./{r}?lang={lang}">'
        f"{t('app.' + r, lang)}</a>"
        for r in NAV
    )
    switch = f'<a class="nav-lang" href="?lang={other}">{t("lang.switch", lang)}</a>'
    header = pn.Row(
        HTML(
            f'<div class="console-header"><a class="brand" href="./?lang={lang}">'
            f'{t("console.title", lang)}</a><span class="page-title">{title}</span>'
            f'<nav>{links}{switch}</nav></div>',
            sizing_mode="stretch_width",
            margin=0,
            stylesheets=[CSS],  # each pane has its own shadow root: style it directly
        ),
        *([header_extra] if header_extra is not None else []),
        sizing_mode="stretch_width",
        css_classes=["console-header-row"],
        margin=0,
    )
    body = pn.Row(
        *([sidebar] if sidebar is not None else []),
        main,
        sizing_mode="stretch_both",
        margin=0,
    )
    return pn.Column(
        header,
        body,
        sizing_mode="stretch_both",
        stylesheets=[CSS],
        css_classes=["console-page", "dark" if dark else "light"],
        margin=0,
    )
