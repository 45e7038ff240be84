// Keeps the dashboard's state tiles current without reloading the page.
(function () {
  "use strict";
  function set(name, text, badge) {
    var el = document.querySelector('[data-status="' + name + '"]');
    if (!el) { return; }
    el.textContent = text;
    if (badge) { el.className = "badge " + badge; }
  }
  function refresh() {
    fetch("/_fallback/admin/status.json", {cache: "no-store", credentials: "same-origin"})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (status) {
        if (!status) { return; }
        set("served", status.served === "down" ? "the page" : "redirected", status.served);
        set("why", status.mode !== "auto" ? "forced by an admin" : "the checker decides");
        set("checked", status.checked_state, status.checked_state);
        set("mode", status.mode);
        set("leads", String(status.leads));
        set("since", status.since ? status.since.slice(11, 16) : "—");
        if (status.followup) {
          set("followup-pending", String(status.followup.pending));
          set("followup-sent", String(status.followup.sent));
          set("followup-failed", String(status.followup.failed));
        }
      })
      .catch(function () { /* offline for a moment: the next tick tries again */ });
  }
  setInterval(refresh, 5000);
})();
