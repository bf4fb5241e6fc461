// The pages mailed links lead to. The token comes in the URL fragment (never sent to a
// server); it is taken out of the address bar at once, and sent in a JSON body only when
// the person presses the button, so a scanner opening the link spends nothing.
"use strict";
(function () {
  var form = document.getElementById("flow");
  var status = document.getElementById("status");
  if (!form) return;
  var token = new URLSearchParams(window.location.hash.slice(1)).get("token") || "";
  if (window.location.hash) {
    history.replaceState(null, "", window.location.pathname);
  }
  var messages = {
    token_malformed: "This link is not complete. Open it again from the message, or copy the whole address.",
    token_unknown: "This link is not valid.",
    token_used: "This link was already used.",
    token_superseded: "A newer link was sent since; use the latest message.",
    token_expired: "This link has expired. Ask for a new one.",
    email_taken: "Another account uses this address now; nothing was changed.",
    rate_limited: "Too many attempts. Wait a little and try again.",
    busy: "The service is busy. Try again in a moment."
  };
  function show(text, kind) {
    status.textContent = text;
    status.className = kind;
  }
  if (!token) {
    show(messages.token_malformed, "error");
    form.querySelector("button").disabled = true;
    return;
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var body = { token: token };
    if (form.dataset.flow === "reset-password") {
      var password = document.getElementById("new_password").value;
      if (password !== document.getElementById("repeat_password").value) {
        show("The two passwords differ.", "error");
        return;
      }
      body.new_password = password;
    }
    var button = form.querySelector("button");
    button.disabled = true;
    fetch(form.dataset.endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
      referrerPolicy: "no-referrer"
    }).then(function (response) {
      if (response.ok) {
        show(form.dataset.done, "done");
        form.hidden = true;
        return;
      }
      return response.json().then(function (problem) {
        var fields = (problem.errors || []).map(function (e) { return e.detail; });
        show(messages[problem.code] || [problem.title].concat(fields).join(" "), "error");
        // A dead link stays dead; a weak password or a busy service can be tried again.
        button.disabled = /^token_|^email_taken$/.test(problem.code);
      });
    }).catch(function () {
      show("The service could not be reached. Try again.", "error");
      button.disabled = false;
    });
  });
})();
