// Accessibility repairs for markup the libraries render without what assistive technology
// needs (WCAG 2.1: 1.3.1 info and relationships, 2.1.1 keyboard, 4.1.2 name, role, value).
// Run once per page (a CustomJS on `document_ready`, see dashboards/theme.py); it watches
// every open shadow root, so parts rendered later (a tab opened, a table refilled) are
// repaired as they appear. It only adds attributes; it never moves or removes elements.
//
//   * panels of inactive tabs: Panel hides them with `aria-hidden` and `visibility`, which
//     leaves their tables' cells in the tab order; `inert` takes them out while hidden;
//   * Tabulator: its `role=grid` holds a focusable scroll holder and the pager's buttons,
//     which a grid may not own (tabulator issue #4151): the holder becomes the body's
//     rowgroup and the footer a row whose pager is a cell;
//   * names: the row-selection check boxes, the icon-only buttons of Panel's Player and of
//     Bokeh's number spinners, and inputs whose visible label is not tied to them (Bokeh's
//     check box, flatpickr's date field, the Player's slider, a Bokeh slider's handle) get
//     the label they show.
//
// `labels` (CustomJS argument) holds the names in the page's language.
if (window.__consoleA11y) {
  return;
}
window.__consoleA11y = true;
const L = labels;
const watched = new WeakSet();
let uid = 0;

function named(el) {
  return el.hasAttribute("aria-label") || el.hasAttribute("aria-labelledby")
    || el.hasAttribute("title") || (el.labels && el.labels.length > 0);
}

function labelBy(el, label) {
  // name `el` by the visible text of `label` (same shadow root), keeping them in step
  if (!label || !label.textContent.trim()) {
    return false;
  }
  if (!label.id) {
    label.id = "a11y-label-" + (++uid);
  }
  el.setAttribute("aria-labelledby", label.id);
  return true;
}

function inTabs(el) {
  const host = el.getRootNode().host;
  return !!host && host.classList.contains("bk-panel-models-tabs-Tabs");
}

function fixTabPanel(el) {
  if (!inTabs(el)) {
    return;
  }
  const hidden = el.getAttribute("aria-hidden") === "true";
  if (hidden && !el.inert) {
    el.inert = true;
    el.setAttribute("data-a11y-inert", "");
  } else if (!hidden && el.hasAttribute("data-a11y-inert")) {
    el.inert = false;
    el.removeAttribute("data-a11y-inert");
  }
}

function fixTabulator(el, cls) {
  if (cls.contains("tabulator") && el.getAttribute("role") === "grid") {
    el.removeAttribute("aria-owns");  // the body is its descendant already
  } else if (cls.contains("tabulator-tableholder")) {
    el.setAttribute("role", "rowgroup");
  } else if (cls.contains("tabulator-table") && el.getAttribute("role") === "rowgroup") {
    el.setAttribute("role", "none");  // its rows belong to the holder's rowgroup
  } else if (cls.contains("tabulator-paginator")) {
    el.setAttribute("role", "gridcell");
    const footer = el.closest(".tabulator-footer");
    if (footer) {
      footer.setAttribute("role", "row");
    }
  }
}

const PLAYER = ["first", "previous", "reverse", "pause", "play", "next", "last", "slower",
                "faster"];

function fixButton(el, cls) {
  if (named(el) || el.textContent.trim()) {
    return;
  }
  if (cls.contains("bk-spin-btn-up")) {
    el.setAttribute("aria-label", L.increase);
  } else if (cls.contains("bk-spin-btn-down")) {
    el.setAttribute("aria-label", L.decrease);
  } else {
    const which = PLAYER.find((c) => cls.contains(c));
    if (which) {
      el.setAttribute("aria-label", L["player_" + which]);
    }
  }
}

function fixInput(el) {
  if (el.type === "hidden" || named(el)) {
    return;
  }
  if (el.type === "checkbox" && el.closest(".tabulator-col, .tabulator-header")) {
    el.setAttribute("aria-label", L.select_all);
    return;
  }
  if (el.type === "checkbox" && el.closest(".tabulator-row")) {
    el.setAttribute("aria-label", L.select_row);
    return;
  }
  const root = el.getRootNode();
  // Bokeh's check box: <input> beside <div class="bk-label">
  const sibling = el.nextElementSibling;
  if (sibling && sibling.classList.contains("bk-label") && labelBy(el, sibling)) {
    return;
  }
  // a Bokeh input group: <label for=...> tied to a hidden input (flatpickr's second field)
  const group = el.closest(".bk-input-group");
  if (group && labelBy(el, group.querySelector(":scope > label"))) {
    return;
  }
  // Panel's Player: the slider under its title
  const title = root.querySelector && root.querySelector(".pn-player-title");
  if (title) {
    const value = title.querySelector(".pn-player-value");
    let text = title.textContent;
    if (value) {
      text = text.replace(value.textContent, "");
    }
    text = text.replace(/[:：]\s*$/, "").trim();
    el.setAttribute("aria-label", text || L.player_position);
  }
}

function fixElement(el) {
  const cls = el.classList;
  if (el.hasAttribute("aria-hidden") || el.hasAttribute("data-a11y-inert")) {
    fixTabPanel(el);
  }
  if (el.className && typeof el.className === "string" && el.className.includes("tabulator")) {
    fixTabulator(el, cls);
  }
  if (cls.contains("noUi-handle") && !named(el)) {
    // Bokeh's slider: the handle (role=slider) is named by the slider's title
    const root = el.getRootNode();
    const title = root.querySelector && root.querySelector(".bk-slider-title");
    const text = title ? title.textContent.split(/[:：]/)[0].trim() : "";
    el.setAttribute("aria-label", text || L.player_position);
  }
  const tag = el.tagName;
  if (tag === "BUTTON") {
    fixButton(el, cls);
  } else if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") {
    fixInput(el);
  }
}

function watch(root) {
  if (!watched.has(root)) {
    watched.add(root);
    observer.observe(root, {childList: true, subtree: true, attributes: true,
                            attributeFilter: ["aria-hidden"]});
  }
}

function walk(node) {
  if (node.nodeType === 1) {
    fixElement(node);
    if (node.shadowRoot) {
      watch(node.shadowRoot);
      walk(node.shadowRoot);
    }
  }
  for (const el of node.querySelectorAll("*")) {
    fixElement(el);
    if (el.shadowRoot) {
      watch(el.shadowRoot);
      walk(el.shadowRoot);
    }
  }
}

const observer = new MutationObserver((records) => {
  for (const r of records) {
    if (r.type === "attributes") {
      fixElement(r.target);
    } else {
      for (const n of r.addedNodes) {
        if (n.nodeType === 1) {
          walk(n);
        }
      }
    }
  }
});

watch(document.body);
walk(document);
