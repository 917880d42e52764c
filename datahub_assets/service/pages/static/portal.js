/* Data Hub portal: the few behaviours htmx does not cover. Buttons with data-fill='{"name":
   "value", ...}' fill the form's inputs of those names (source helpers); data-remove="#id"
   removes a check row. Either then asks the form to validate again. */
(function () {
  "use strict";
  function changed(form) {
    if (form) { form.dispatchEvent(new Event("change", { bubbles: true })); }
  }
  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    if (!target) { return; }
    var fill = target.closest("[data-fill]");
    if (fill) {
      event.preventDefault();
      var values = JSON.parse(fill.getAttribute("data-fill") || "{}");
      var form = fill.closest("form") || document.getElementById("wizard");
      Object.keys(values).forEach(function (name) {
        var input = form ? form.querySelector('[name="' + CSS.escape(name) + '"]') : null;
        if (input) { input.value = values[name]; }
      });
      changed(form);
      return;
    }
    var remove = target.closest("[data-remove]");
    if (remove) {
      event.preventDefault();
      var row = document.querySelector(remove.getAttribute("data-remove"));
      var owner = row ? row.closest("form") : null;
      if (row) { row.remove(); }
      changed(owner);
    }
  });
})();
