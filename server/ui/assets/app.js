// flowdb dashboard: refreshes the page's live region every 1.5 s (the
// server renders it, escaped, as HTML), and sends the dead-letter actions
// as same-origin JSON POSTs carrying the page's CSRF token, after a
// confirmation. No framework; nothing to install.
(function () {
  "use strict";
  var PERIOD = 1500;
  var csrfMeta = document.querySelector('meta[name="csrf"]');
  var csrf = csrfMeta ? csrfMeta.content : "";
  var live = document.getElementById("live");
  var modal = document.getElementById("modal");
  var flash = document.getElementById("flash");
  var updated = document.getElementById("updated");
  var busy = false;
  var polls = 0;

  function say(text, bad) {
    if (!flash) return;
    flash.textContent = text;
    flash.className = bad ? "error" : "ok";
  }

  function stamp() {
    polls++;
    if (updated) updated.textContent = "updated " + new Date().toLocaleTimeString();
    document.body.setAttribute("data-polls", String(polls));
  }

  function poll() {
    if (!live || busy || document.hidden || (modal && !modal.hidden)) return;
    if (document.body.getAttribute("data-page") === "login") return;
    busy = true;
    fetch(location.href, { headers: { "X-FlowDB-Fragment": "1" }, credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { location.reload(); return null; }
        return r.text();
      })
      .then(function (html) {
        if (html === null) return;
        live.innerHTML = html;
        stamp();
      })
      .catch(function () { if (updated) updated.textContent = "server unreachable"; })
      .then(function () { busy = false; });
  }

  function post(path, body) {
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-FlowDB-CSRF": csrf },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) { return { status: r.status, body: j }; });
    });
  }

  var pending = null;
  function ask(text, fn) {
    pending = fn;
    document.getElementById("modal-text").textContent = text;
    modal.hidden = false;
    document.getElementById("modal-no").focus();
  }
  if (modal) {
    document.getElementById("modal-yes").addEventListener("click", function () {
      modal.hidden = true;
      var fn = pending; pending = null;
      if (fn) fn();
    });
    document.getElementById("modal-no").addEventListener("click", function () {
      modal.hidden = true; pending = null;
    });
  }

  document.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest("button[data-action]") : null;
    if (!b) return;
    var action = b.getAttribute("data-action");
    var q = b.getAttribute("data-queue");
    var id = b.getAttribute("data-id");
    var verb = action === "purge" ? "Purge (delete for good)" : "Replay (back to ready)";
    ask(verb + " dead task " + id + " of queue " + q + "?", function () {
      post("/ui/api/" + action, { queue: q, ids: [id] }).then(function (r) {
        if (r.status === 200) say(action + " of task " + id + " done", false);
        else say(action + " refused (" + r.status + "): " + (r.body.error || ""), true);
        poll();
      });
    });
  });

  var form = document.getElementById("login-form");
  if (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var err = document.getElementById("login-error");
      fetch("/ui/api/login", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token: document.getElementById("token").value })
      }).then(function (r) {
        if (r.ok) {
          location.href = location.pathname.indexOf("/ui/login") === 0 ? "/ui/" : location.href;
          return;
        }
        return r.json().then(function (j) { err.textContent = j.error || "sign-in failed"; err.hidden = false; });
      });
    });
  }

  var logout = document.getElementById("logout");
  if (logout) {
    logout.addEventListener("click", function () {
      fetch("/ui/api/logout", { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: "{}" })
        .then(function () { location.href = "/ui/login"; });
    });
  }

  if (live) { stamp(); setInterval(poll, PERIOD); }
})();
