"""Page scripts shared by the browser tests and the bench scripts that drive Chromium.

Panel renders each pane in its own shadow root, so ``document.querySelector`` does not see
what a page shows. :data:`DEEP_JS` defines ``window.__deep(sel, text?)`` (the first element
matching ``sel`` — and containing ``text`` when given — through every open shadow root) and
``window.__text(sel)`` (its text, its shadow root's when it has one). :data:`WATCH_JS` adds
watchers that note in ``window.__seen`` when a text first appears in an element, or when
the element's text first changes, polling every 10 ms, and ``window.__click`` (the time of
the last pointer press). Add them with ``page.add_script_tag(content=...)`` or
``page.add_init_script(...)``.
"""
from __future__ import annotations

DEEP_JS = """
window.__deep = (sel, text) => {
  const roots = [document];
  while (roots.length) {
    const root = roots.pop();
    for (const el of root.querySelectorAll(sel)) {
      if (!text || (el.textContent || '').includes(text)) return el;
    }
    for (const el of root.querySelectorAll('*')) if (el.shadowRoot) roots.push(el.shadowRoot);
  }
  return null;
};
window.__text = (sel) => {
  const el = window.__deep(sel);
  return el ? ((el.shadowRoot || el).textContent || '') : '';
};
"""

WATCH_JS = DEEP_JS + """
window.__seen = {};
window.__watch = (host, text, key) => {
  // notes (under ``key``, default the text) when ``text`` first shows in ``host``
  const el = window.__deep(host);
  const root = el.shadowRoot || el;
  const tick = () => {
    if ((root.textContent || '').includes(text)) { window.__seen[key ?? text] = Date.now(); return; }
    setTimeout(tick, 10);
  };
  tick();
};
window.__watchChange = (host, key) => {
  // notes when the text of ``host`` first differs from what it is now
  const el = window.__deep(host);
  const root = el.shadowRoot || el;
  const before = root.textContent || '';
  const tick = () => {
    if ((root.textContent || '') !== before) { window.__seen[key] = Date.now(); return; }
    setTimeout(tick, 10);
  };
  tick();
};
document.addEventListener('pointerdown', () => { window.__click = Date.now(); }, true);
"""
