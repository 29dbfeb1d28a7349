// Live pages: when Auth's change feed says this user's access changed, or the access reaches its
// `valid_until` (a trial or membership ending), fetch this page again and swap the navigation and the
// main content (no reload; every decision still comes from the server).
(function () {
  "use strict";
  if (!window.EventSource || !window.fetch || !window.DOMParser) return;
  var source = null;
  function connect() {
    if (source) return;
    source = new EventSource("/events");
    source.addEventListener("access", refresh);
  }
  // A page leaving (or going into the back-forward cache) closes its stream: browsers allow a few
  // connections per host, and a stream held by a hidden page would make the next page wait.
  window.addEventListener("pagehide", function () { if (source) { source.close(); source = null; } });
  window.addEventListener("pageshow", function (e) { connect(); if (e.persisted) refresh(); });
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { credentials: "same-origin", headers: { "accept": "text/html", "x-kisum-live": "1" } })
      .then(function (r) { return r.redirected ? null : r.text(); })
      .then(function (html) {
        if (html === null) { location.reload(); return; }
        var next = new DOMParser().parseFromString(html, "text/html");
        ["nav", "main"].forEach(function (id) {
          var now = document.getElementById(id), then = next.getElementById(id);
          if (now && then) {
            // What the last form did (a secret shown once included) stays on screen.
            var keep = now.querySelectorAll("[data-flash]"), title = then.querySelector("h1");
            for (var i = 0; i < keep.length; i++) then.insertBefore(keep[i], title);
            now.replaceWith(then);
          }
          else if (now && !then) location.reload();
        });
        ["data-version", "data-valid-until"].forEach(function (a) {
          var v = next.body && next.body.getAttribute(a);
          if (v) document.body.setAttribute(a, v); else document.body.removeAttribute(a);
        });
        schedule();
        document.body.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  var timer = null;
  function schedule() {
    if (timer) clearTimeout(timer);
    var until = Date.parse(document.body.getAttribute("data-valid-until") || "");
    var wait = until - Date.now() + 500;
    if (!isNaN(until) && wait < 2147483647) timer = setTimeout(refresh, Math.max(500, wait));
  }
  connect();
  schedule();
})();
