// automations console: new runs appear on the runs list without a reload (server-sent events).
// The only script of the console; loaded from /static (the CSP allows no inline script).
"use strict";
(function () {
  const table = document.getElementById("runs");
  if (!table || !table.dataset.events || typeof EventSource === "undefined") return;
  const rows = document.getElementById("run-rows");
  const state = document.getElementById("live-state");
  const source = new EventSource(table.dataset.events);
  source.addEventListener("run", function (event) {
    const data = JSON.parse(event.data);
    // the row is rendered and escaped by the server, from the same template as the page
    const template = document.createElement("template");
    template.innerHTML = data.html.trim();
    const row = template.content.firstElementChild;
    if (!row) return;
    const old = rows.querySelector('tr[data-run-id="' + CSS.escape(data.id) + '"]');
    if (old) {
      old.replaceWith(row);
    } else {
      row.classList.add("fresh");
      rows.insertBefore(row, rows.firstChild);
      const empty = document.getElementById("no-runs");
      if (empty) empty.remove();
    }
  });
  source.addEventListener("open", function () {
    if (state) state.textContent = "Live: new runs appear here as they are recorded.";
  });
  source.addEventListener("error", function () {
    if (state) state.textContent = "Live updates interrupted; retrying…";
  });
})();
