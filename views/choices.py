"""Multi-choice widgets show their labels as text, with no warning in the browser console.

Panel's ``MultiChoice`` is Bokeh's, and Bokeh's view (``bokeh-widgets.js``,
``MultiChoiceView.render``) builds its Choices.js box without Choices' ``allowHTML`` option.
Choices.js then renders every option label as HTML and warns on every widget of every page
("allowHTML will default to false in a future release"). Neither Panel nor Bokeh 3.9 lets a
caller pass the option, so :func:`text_labels_script` adds one small script to the page,
after Bokeh's own, that builds the box as Bokeh does with ``allowHTML: false``: a county name
or a tag is shown as the text it is, never parsed as markup.

The script needs the Choices class, which Bokeh's bundle does not export: its module number
is read from the installed ``bokeh-widgets.js`` (it names each module in a comment). If
Bokeh's ``render`` no longer matches the one copied here (after an upgrade), nothing is
patched and the browser test of clean logs shows the warning again.
"""
from __future__ import annotations

import base64
import logging
import re
from functools import cache
from pathlib import Path

import bokeh
import panel as pn

log = logging.getLogger(__name__)

WIDGETS_JS = Path(bokeh.__file__).parent / "server" / "static" / "js" / "bokeh-widgets.js"
_MODULE = re.compile(r"^\s*(\d+): /\* choices\.js/public/assets/scripts/choices\.js \*/",
                     re.MULTILINE)
#: What Bokeh's render must still say for the copy below to be the same widget.
_BOKEH_RENDER = ("searchResultLimit: this.model.search_option_limit ?? 4,\n"
                 "            };\n"
                 "            this.choice_el = new OurChoices(this.input_el, options);\n"
                 '            this.input_el.addEventListener("change", () => this.change_input());')

SCRIPT = """(function () {
  "use strict";
  if (!window.Bokeh || !Bokeh.require || Bokeh.version !== %(version)s) return;
  var mod = Bokeh.require("models/widgets/multi_choice");
  var View = mod && mod.MultiChoiceView;
  if (!View || View.prototype.__console_text_labels) return;
  var exported = Bokeh.require(%(module)d);
  var Choices = exported && exported.__esModule ? exported.default : exported;
  if (typeof Choices !== "function") return;
  // events from inside the shadow root name their real target, as Bokeh's own subclass does
  function retarget(event) {
    Object.defineProperty(event, "target", {
      get: function () { return event.composedPath()[0] || null; }, configurable: true});
    return event;
  }
  class TextChoices extends Choices {}
  ["_onFocus", "_onBlur", "_onKeyUp", "_onKeyDown", "_onClick", "_onTouchEnd",
   "_onMouseDown", "_onMouseOver"].forEach(function (name) {
    TextChoices.prototype[name] = function (event) {
      return Choices.prototype[name].call(this, retarget(event));
    };
  });
  var base = Object.getPrototypeOf(View.prototype).render;
  View.prototype.render = function () {  // Bokeh %(version)s's render, with allowHTML: false
    base.call(this);
    var model = this.model, selected = new Set(model.value);
    var choices = model.options.map(function (opt) {
      var pair = typeof opt === "string" ? [opt, opt] : opt;
      return {value: pair[0], label: pair[1], selected: selected.has(pair[0])};
    });
    var fill = model.solid ? "solid" : "light";
    this.choice_el = new TextChoices(this.input_el, {
      choices: choices,
      allowHTML: false,
      itemSelectText: "",
      duplicateItemsAllowed: false,
      shouldSort: false,
      removeItemButton: model.delete_button,
      classNames: {item: "choices__item " + fill, button: "choices__button " + fill},
      placeholderValue: model.placeholder,
      maxItemCount: model.max_items == null ? -1 : model.max_items,
      renderChoiceLimit: model.option_limit == null ? -1 : model.option_limit,
      searchResultLimit: model.search_option_limit == null ? 4 : model.search_option_limit,
    });
    var view = this;
    this.input_el.addEventListener("change", function () { view.change_input(); });
  };
  View.prototype.__console_text_labels = true;
})();
"""


@cache
def text_labels_script() -> str | None:
    """The script (JavaScript source) for the installed Bokeh, or None when it does not fit."""
    try:
        source = WIDGETS_JS.read_text(encoding="utf-8")
    except OSError as exc:
        log.info("multi-choice labels left to Bokeh: %s", exc)
        return None
    found = _MODULE.search(source)
    if found is None or _BOKEH_RENDER not in source:
        log.info("multi-choice labels left to Bokeh: its MultiChoice view changed (%s)",
                 bokeh.__version__)
        return None
    return SCRIPT % {"version": repr(bokeh.__version__), "module": int(found.group(1))}


def use_text_labels() -> bool:
    """Add the script to every page served from now on (once, when the server starts)."""
    script = text_labels_script()
    if script is None:
        return False
    # a data: URL, so no route is needed and nothing is fetched from anywhere
    data = base64.b64encode(script.encode("utf-8")).decode("ascii")
    pn.config.js_files["console_choices_text"] = f"data:text/javascript;base64,{data}"
    return True
