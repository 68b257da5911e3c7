"""The board's clock, data freshness and watchdog, ticking in the browser.

The server only sends facts (its own time, when the last reading arrived, how many feeds are
connected) every couple of seconds; the browser counts the seconds itself. So when the
server or the network goes away the board does not freeze on a live-looking picture: the
clock keeps running, "last reading N s ago" keeps growing and turns red, and a watchdog
polls ``/health`` and reloads the page as soon as the server answers again.

The watchdog calls the server lost when the page's websocket closes (Bokeh's
``connection_lost``), or — a connection that died without closing — when no heartbeat came
for ``heartbeat_timeout_s`` (a minute). A heartbeat merely late because the server or the
browser is busy (an event storm) is not a lost server: before, a 12 s timeout on the
heartbeat alone reloaded busy walls, and a reload under load made more load.

:class:`WallRotation` cycles the console's pages (``?rotate=SECONDS``) in a full-screen frame
above the board, so the playlist keeps running from the board page itself; the next page is
loaded in a hidden frame before its turn, so a switch never shows a blank page.
"""
from __future__ import annotations

import panel as pn
import param

from .i18n import t

CLOCK_CSS = """
:host { display: block; height: 100%; }
.clock { display: flex; align-items: center; justify-content: flex-end; gap: 2vw; height: 100%;
  font-variant-numeric: tabular-nums; color: #e6edf7; white-space: nowrap; overflow: hidden; }
.clock .time { font-size: 3.4vh; line-height: 1.1; font-weight: 700; letter-spacing: .05em; }
.clock .date { font-size: 1.8vh; line-height: 1.2; color: #9fb3c8; }
.fresh { font-size: 2.2vh; padding: .3vh 1vw; border-radius: .6vh; border: 2px solid #1f9d55;
  color: #7ee2a8; }
.fresh.stale { color: #fff; background: #d90429; border-color: #ff4d6d;
  animation: blink 1s steps(2, start) infinite; }
@keyframes blink { to { background: #7a0014; } }
"""

STALE_FRAME_CSS = (
    "position:fixed;inset:0;pointer-events:none;z-index:9998;"
    "box-shadow:inset 0 0 0 .8vh #ff1744;display:none;"
)

CLOCK_ESM = """
const pad = (n) => String(n).padStart(2, "0");

export function render({ model, el }) {
  const box = document.createElement("div");
  box.className = "clock";
  box.innerHTML = `<div class="fresh" data-board="freshness"></div>
    <div><div class="time" data-board="time"></div><div class="date" data-board="date"></div></div>`;
  el.appendChild(box);
  const fresh = box.querySelector(".fresh"), timeEl = box.querySelector(".time"),
        dateEl = box.querySelector(".date");
  // a red frame around the whole viewport while the data is stale (outside the shadow root)
  const frame = document.createElement("div");
  frame.setAttribute("data-board", "stale-frame");
  frame.style.cssText = model.frame_css;
  document.body.appendChild(frame);

  let offset = model.server_ms ? model.server_ms - Date.now() : 0;
  let lastBeat = Date.now();
  let polling = false;
  let disconnected = false;  // the page's websocket closed: the server (or the way to it) is gone
  model.on("server_ms", () => { offset = model.server_ms - Date.now(); lastBeat = Date.now(); });
  const doc = model.document;
  if (doc && doc.on_event) doc.on_event("connection_lost", () => { disconnected = true; tick(); });

  function fmt(tpl, n) { return tpl.replace("{n}", n); }

  // reload only after two good answers in a row: a server that is still going down (or
  // half up) must not turn the wall into a browser error page, where no script runs
  let healthy = 0;
  async function poll() {
    if (polling || !model.health_url) return;
    polling = true;
    try {
      const r = await fetch(model.health_url + "?_=" + Date.now(), { cache: "no-store" });
      healthy = r.ok ? healthy + 1 : 0;
      if (healthy >= 2) { location.reload(); return; }
    } catch (e) { healthy = 0; }
    polling = false;
  }

  function tick() {
    const now = Date.now() + offset;  // the server's clock, so ages agree with it
    const local = new Date(now + model.utc_offset_min * 60000);
    timeEl.textContent = `${pad(local.getUTCHours())}:${pad(local.getUTCMinutes())}:${pad(local.getUTCSeconds())}`;
    dateEl.textContent = `${local.getUTCFullYear()}-${pad(local.getUTCMonth() + 1)}-${pad(local.getUTCDate())} ${model.labels.weekday[local.getUTCDay()]}`;
    // lost: the websocket closed, or no heartbeat for a long time (a connection that died
    // without closing); a heartbeat merely late under load is not a lost server
    const lost = disconnected || Date.now() - lastBeat > model.heartbeat_timeout_s * 1000;
    let text, stale = true, state;
    if (lost) {
      text = model.labels.lost; state = "lost";
      poll();
    } else if (model.feeds_total === 0) {
      text = model.labels.no_feed; state = "no_feed";
    } else if (!model.last_ms) {
      text = model.labels.waiting; state = "waiting";
    } else {
      const age = Math.max(0, Math.round((now - model.last_ms) / 1000));
      stale = age > model.stale_after_s || model.feeds_connected === 0;
      state = stale ? "stale" : "live";
      text = fmt(stale ? model.labels.stale : model.labels.live, age);
      if (model.feeds_connected < model.feeds_total) {
        text += " · " + fmt(model.labels.feeds_down, model.feeds_total - model.feeds_connected);
        if (model.feeds_connected === 0) { stale = true; state = "stale"; }
      }
    }
    fresh.textContent = text;
    fresh.classList.toggle("stale", stale);
    fresh.dataset.state = state;
    frame.style.display = stale ? "block" : "none";
  }
  tick();
  const timer = setInterval(tick, 500);
  model.on("remove", () => { clearInterval(timer); frame.remove(); });
}
"""


class ClockPane(pn.custom.JSComponent):
    """Local time, data freshness and the reconnect watchdog (all ticking in the browser)."""

    server_ms = param.Number(default=0, doc="The server's clock (epoch ms): the heartbeat.")
    last_ms = param.Number(default=0, doc="When the last reading reached the server (epoch ms).")
    feeds_connected = param.Integer(default=0, doc="Feeds connected now.")
    feeds_total = param.Integer(default=0, doc="Feeds configured.")
    stale_after_s = param.Number(default=20, doc="Seconds without a reading before it is stale.")
    heartbeat_timeout_s = param.Number(
        default=60, doc="Seconds without a heartbeat, the websocket still open, before the "
                        "page calls the server lost (a connection that died without closing; "
                        "a closed one is lost at once). Heartbeats come every 2 s: a busy "
                        "server or browser delays them, and that must not reload a wall.")
    utc_offset_min = param.Integer(default=480, doc="Local time offset (Asia/Shanghai: +8 h).")
    health_url = param.String(default="health", doc=(
        "URL polled while the server is lost; empty: there is no server to wait for."))
    labels = param.Dict(default={}, doc="Texts of the clock in the page's language.")
    frame_css = param.String(default=STALE_FRAME_CSS, doc="Style of the red stale frame.")

    _esm = CLOCK_ESM
    _stylesheets = [CLOCK_CSS]

    @staticmethod
    def labels_for(lang: str) -> dict:
        return {
            "live": t("board.fresh.live", lang), "stale": t("board.fresh.stale", lang),
            "lost": t("board.fresh.lost", lang), "no_feed": t("board.fresh.no_feed", lang),
            "waiting": t("board.fresh.waiting", lang),
            "feeds_down": t("board.fresh.feeds_down", lang),
            "weekday": t("board.weekdays", lang).split(","),
        }


ROTATION_ESM = """
export function render({ model, el }) {
  const period = model.period_s * 1000;
  if (!(period > 0) || !model.pages.length) return document.createElement("span");
  // two frames: the one shown and the next page, loaded before its turn (hidden but laid
  // out at full size), so a switch shows a live page at once; a page that leaves is
  // unloaded (its session ends) rather than kept live behind the others
  const make = () => {
    const f = document.createElement("iframe");
    f.style.cssText = "position:fixed;inset:0;width:100vw;height:100vh;border:0;" +
                      "z-index:9990;background:#0b1220;visibility:hidden;pointer-events:none;";
    f.setAttribute("aria-hidden", "true");
    f.tabIndex = -1;
    document.body.appendChild(f);
    return f;
  };
  let shown = make(), next = make();
  shown.setAttribute("data-board", "rotation");
  next.setAttribute("data-board", "rotation-next");
  shown.title = next.title = model.titles[0] || "";  // named for assistive technology
  const show = (f, on) => {
    f.style.visibility = on ? "visible" : "hidden";
    f.style.pointerEvents = on ? "auto" : "none";
    if (on) { f.removeAttribute("aria-hidden"); f.tabIndex = 0; }
    else { f.setAttribute("aria-hidden", "true"); f.tabIndex = -1; }
  };
  let i = 0;  // page 0 is the board itself: no frame shown there
  document.body.dataset.rotationPage = model.pages[0];
  const lead = Math.min(10000, period / 2);
  const preload = () => {
    const j = (i + 1) % model.pages.length;
    if (j !== 0 && next.dataset.src !== model.pages[j]) {
      next.dataset.src = model.pages[j];
      next.title = model.titles[j] || model.pages[j];
      next.src = model.pages[j];
    }
  };
  let preloadTimer = setTimeout(preload, period - lead);
  const timer = setInterval(() => {
    i = (i + 1) % model.pages.length;
    const url = model.pages[i];
    document.body.dataset.rotationPage = url;
    const leaving = shown;  // unloaded once hidden: its session ends
    if (i !== 0) {
      if (next.dataset.src !== url) { next.dataset.src = url; next.src = url; }
      [shown, next] = [next, leaving];
      shown.title = model.titles[i] || url;
      show(shown, true);
      shown.setAttribute("data-board", "rotation");
      next.setAttribute("data-board", "rotation-next");
    }
    show(leaving, false);
    if (leaving.dataset.src) { leaving.src = "about:blank"; delete leaving.dataset.src; }
    clearTimeout(preloadTimer);
    preloadTimer = setTimeout(preload, period - lead);
  }, period);
  model.on("remove", () => {
    clearInterval(timer); clearTimeout(preloadTimer); shown.remove(); next.remove();
  });
  return document.createElement("span");
}
"""


class WallRotation(pn.custom.JSComponent):
    """Cycle through pages like a playlist: each shown full screen for ``period_s``.

    The next page loads in a hidden frame up to 10 s before its turn and is shown when it
    comes; the page that leaves is unloaded. (Keeping every played page loaded would keep
    three more live sessions per wall reacting to every event — more server work than
    opening one page a period; ``bench/capacity.py`` measures both costs.)
    """

    period_s = param.Number(default=0, doc="Seconds per page; 0 turns the rotation off.")
    pages = param.List(default=[], doc="URLs in order; the first is the board itself.")
    titles = param.List(default=[], doc="Title of each page, in the order of ``pages``.")

    _esm = ROTATION_ESM
