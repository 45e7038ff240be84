// The page looks again by itself, so that nobody has to keep reloading it: after the delay the page was
// drawn (data-refresh, in seconds: around Retry-After on the down page, so that thousands of open tabs do
// not come back in the same second; on the waiting page, never after the visitor's turn), it asks the small
// public status document whether the page is still served, and once it is not, loads the very address
// the visitor asked for, path and query included. It waits while someone is using the form.
(function () {
  "use strict";
  var script = document.getElementById("live");
  if (!script || !window.fetch) { return; }
  var form = document.querySelector("form");

  function busy() {
    if (!form) { return false; }
    if (form.contains(document.activeElement)) { return true; }
    var fields = form.querySelectorAll("input[type=email], input[type=text], textarea");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value) { return true; }
    }
    return false;
  }

  function around(seconds) {
    return Math.max(1, seconds * (0.7 + 0.6 * Math.random())) * 1000;
  }

  function look() {
    if (busy()) { setTimeout(look, 5000); return; }
    fetch(script.getAttribute("data-state"), {cache: "no-store", credentials: "same-origin"})
      .then(function (response) { return response.json(); })
      .then(function (status) {
        if (status.state === "down" || status.mode === "down") {
          setTimeout(look, around(status.retry_after || 60));
        } else {
          window.location.reload();
        }
      })
      .catch(function () { setTimeout(look, around(60)); });
  }

  setTimeout(look, (Number(script.getAttribute("data-refresh")) || 60) * 1000);
})();
