// Live pages: when Auth's change feed says this user's access changed, fetch this page again and
// swap the navigation and the main content (no reload; every decision still comes from the server).
(function () {
  "use strict";
  if (!window.EventSource || !window.fetch || !window.DOMParser) return;
  var source = new EventSource("/events");
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { credentials: "same-origin", headers: { "accept": "text/html" } })
      .then(function (r) { return r.redirected ? null : r.text(); })
      .then(function (html) {
        if (html === null) { location.reload(); return; }
        var next = new DOMParser().parseFromString(html, "text/html");
        ["nav", "main"].forEach(function (id) {
          var now = document.getElementById(id), then = next.getElementById(id);
          if (now && then) now.replaceWith(then);
          else if (now && !then) location.reload();
        });
        var v = next.body && next.body.getAttribute("data-version");
        if (v) document.body.setAttribute("data-version", v);
        document.body.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  source.addEventListener("access", refresh);
})();
