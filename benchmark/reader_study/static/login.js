// Login page: an invitation link carries the token in the URL fragment (#invite=TOKEN), which the
// browser never sends to the server (no access log); it fills the form and is removed from the
// address bar and history at once (also when the link is opened on this page already).
"use strict";
(function () {
  function take() {
    const m = /^#invite=([A-Za-z0-9_-]+)$/.exec(window.location.hash);
    if (!m) return;
    document.getElementById("token").value = m[1];
    history.replaceState(null, "", window.location.pathname);
  }
  window.addEventListener("hashchange", take);
  take();
})();
