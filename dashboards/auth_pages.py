"""The pages of the login edge: sign in, wall sign-in, signed out, not permitted.

Self-contained HTML: inline style, system fonts, an empty ``data:`` icon, no script except
the wall page's few lines (allowed by a per-response nonce) — nothing is fetched from
anywhere, the console's own server included. Chinese and English, ``lang`` set, every input
labelled, errors announced (``role="alert"``).
"""
from __future__ import annotations

from html import escape

from views.i18n import t

CSS = """
:root{color-scheme:light dark}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;
 font-family:"Noto Sans CJK SC","Source Han Sans SC","Microsoft YaHei","PingFang SC",
 system-ui,sans-serif;background:#0b2545;color:#1b1b1b}
main{background:#fff;border-radius:8px;padding:32px 36px;width:min(380px,90vw);
 box-shadow:0 8px 30px rgba(0,0,0,.35)}
h1{font-size:20px;margin:0 0 4px;color:#0b2545}
h2{font-size:16px;margin:0 0 20px;font-weight:normal;color:#333}
label{display:block;margin:14px 0 4px;font-weight:bold}
input{box-sizing:border-box;width:100%;padding:9px 10px;font-size:16px;border:1px solid #666;
 border-radius:4px}
input:focus,button:focus,a:focus{outline:3px solid #f0a202;outline-offset:2px}
button{margin-top:22px;width:100%;padding:10px;font-size:16px;border:0;border-radius:4px;
 background:#13315c;color:#fff;cursor:pointer}
.error{background:#fde8e8;color:#8a1010;border:1px solid #c62828;padding:8px 10px;
 border-radius:4px}
.note{font-size:13px;color:#444;margin-top:20px}
.lang{text-align:right;margin:0 0 8px;font-size:14px}
a{color:#0b4f9c}
"""


def _page(lang: str, title: str, body: str, *, nonce: str | None = None,
          script: str = "") -> str:
    script_tag = f'<script nonce="{escape(nonce)}">{script}</script>' if nonce else ""
    return (
        "<!doctype html>\n"
        f'<html lang="{"zh-CN" if lang == "zh" else "en"}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="same-origin">\n'
        f'<title>{escape(title)}</title>\n<link rel="icon" href="data:,">\n'
        f"<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n{script_tag}\n"
        "</body>\n</html>\n")


def _lang_switch(lang: str, path: str, query: str = "") -> str:
    other = "en" if lang == "zh" else "zh"
    sep = "&" if query else ""
    return (f'<p class="lang"><a href="{escape(path)}?{escape(query)}{sep}lang={other}" '
            f'lang="{"en" if other == "en" else "zh-CN"}">{escape(t("lang.switch", lang))}</a></p>')


def _error(message: str | None) -> str:
    return f'<p class="error" role="alert">{escape(message)}</p>' if message else ""


def login_page(lang: str, *, csrf: str, next_url: str, error: str | None = None,
               username: str = "") -> str:
    """The sign-in form (POSTs to ``/login``)."""
    from urllib.parse import urlencode

    query = urlencode({"next": next_url}) if next_url else ""
    body = (
        _lang_switch(lang, "/login", query)
        + f'<h1>{escape(t("console.title", lang))}</h1>'
        + f'<h2>{escape(t("access.login.heading", lang))}</h2>'
        + _error(error)
        + '<form method="post" action="/login">'
        + f'<input type="hidden" name="_csrf" value="{escape(csrf)}">'
        + f'<input type="hidden" name="next" value="{escape(next_url)}">'
        + f'<label for="username">{escape(t("access.login.username", lang))}</label>'
        + f'<input id="username" name="username" value="{escape(username)}" required '
          'maxlength="64" autocomplete="username" autocapitalize="none" spellcheck="false"'
          f'{"" if username else " autofocus"}>'
        + f'<label for="password">{escape(t("access.login.password", lang))}</label>'
        + '<input id="password" name="password" type="password" required maxlength="1024" '
          f'autocomplete="current-password"{" autofocus" if username else ""}>'
        + f'<input type="hidden" name="lang" value="{escape(lang)}">'
        + f'<button type="submit">{escape(t("access.login.submit", lang))}</button>'
        + "</form>"
        + f'<p class="note">{escape(t("access.login.offline_note", lang))}</p>')
    return _page(lang, f'{t("access.login.heading", lang)} · {t("console.title", lang)}', body)


# Reads the token from the URL's fragment (never sent to the server), removes it from the
# address bar and history, and posts it; without script, the form takes a pasted token.
TOKEN_SCRIPT = (
    "(function(){var m=/(?:^#|&)t=([A-Za-z0-9_-]{20,128})/.exec(location.hash);"
    "if(!m)return;history.replaceState(null,'',location.pathname+location.search);"
    "var f=document.getElementById('token-form');f.elements.t.value=m[1];f.submit();})();")


def token_page(lang: str, *, csrf: str, nonce: str, error: str | None = None,
               explicit_lang: bool = False) -> str:
    """The wall's sign-in page (``/login/token#t=…``; ``?lang=`` carries on to the board)."""
    body = (
        f'<h1>{escape(t("console.title", lang))}</h1>'
        + f'<h2>{escape(t("access.token.heading", lang))}</h2>'
        + _error(error)
        + '<form id="token-form" method="post" action="/login/token">'
        + f'<input type="hidden" name="_csrf" value="{escape(csrf)}">'
        + (f'<input type="hidden" name="lang" value="{escape(lang)}">' if explicit_lang else "")
        + f'<label for="t">{escape(t("access.token.label", lang))}</label>'
        + '<input id="t" name="t" type="password" required maxlength="128" autocomplete="off">'
        + f'<button type="submit">{escape(t("access.token.submit", lang))}</button></form>')
    return _page(lang, t("access.token.heading", lang), body,
                 nonce=None if error else nonce, script=TOKEN_SCRIPT)


def logout_page(lang: str) -> str:
    body = (f'<h1>{escape(t("console.title", lang))}</h1>'
            + f'<h2 role="status">{escape(t("access.logout.done", lang))}</h2>'
            + f'<p><a href="/login?lang={lang}">{escape(t("access.logout.again", lang))}</a></p>')
    return _page(lang, t("access.logout.done", lang), body)


def denied_page(lang: str, reason: str, *, signed_in_as: str = "") -> str:
    body = (f'<h1>{escape(t("access.denied.heading", lang))}</h1>'
            + _error(reason)
            + (f"<p>{escape(signed_in_as)}</p>" if signed_in_as else "")
            + f'<p><a href="/?lang={lang}">{escape(t("access.denied.back", lang))}</a> · '
            + f'<a href="/logout?lang={lang}">{escape(t("access.logout", lang))}</a></p>')
    return _page(lang, t("access.denied.heading", lang), body)
