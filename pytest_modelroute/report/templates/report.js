(function () {
  "use strict";
  // on a phone a table's rows are cards: label each cell with its column's header
  var tables = document.querySelectorAll("table");
  for (var t = 0; t < tables.length; t++) {
    var heads = tables[t].querySelectorAll("thead th");
    if (!heads.length) { continue; }
    var rows = tables[t].querySelectorAll("tbody tr");
    for (var r = 0; r < rows.length; r++) {
      var cells = rows[r].children;
      for (var c = 0; c < cells.length && c < heads.length; c++) {
        var label = heads[c].getAttribute("data-label") ||
          heads[c].textContent.replace(/\s+/g, " ").trim();
        if (label && cells[c].colSpan === 1 && cells[c].textContent.trim()) {
          cells[c].setAttribute("data-label", label);
        }
      }
    }
  }
}());
(function () {
  "use strict";
  var bar = document.getElementById("filters");
  var list = document.getElementById("case-list");
  if (!bar || !list) { return; }
  var cases = list.querySelectorAll("#case-list > details");
  var count = document.getElementById("shown");
  var select = document.getElementById("task-filter");
  var state = { f: "all", t: "" };
  function apply() {
    var shown = 0;
    for (var i = 0; i < cases.length; i++) {
      var c = cases[i];
      var flags = " " + c.getAttribute("data-f") + " ";
      var ok = (state.f === "all" || flags.indexOf(" " + state.f + " ") >= 0) &&
        (!state.t || c.querySelector("summary > i").textContent === state.t);
      c.hidden = !ok;
      if (ok) { shown++; }
    }
    count.textContent = shown + " of " + cases.length + " cases shown";
  }
  bar.addEventListener("click", function (e) {
    var b = e.target.closest("button");
    if (!b) { return; }
    if (b.hasAttribute("data-f")) {
      state.f = b.getAttribute("data-f");
      var all = bar.querySelectorAll("button[data-f]");
      for (var i = 0; i < all.length; i++) {
        all[i].setAttribute("aria-pressed", String(all[i] === b));
      }
      apply();
    } else if (b.hasAttribute("data-open")) {
      var open = b.getAttribute("data-open") === "1";
      for (var j = 0; j < cases.length; j++) {
        if (!cases[j].hidden) { cases[j].open = open; }
      }
    }
  });
  if (select) {
    select.addEventListener("change", function () { state.t = select.value; apply(); });
  }
  bar.hidden = false;
  apply();
}());
