// Login page. An invitation link carries the token in the URL fragment (#invite=TOKEN), which the
// browser never sends to the server (no access log). This script is the first thing the page runs
// (in <head>): it takes the token out of the address bar and the tab's history before anything
// else, then logs in at once, so the link is used up on the server the moment it is opened (the
// browser's global history still records the address it was opened at; that link no longer
// works). It also remembers, in this browser, a mark of every link it opened (a short hash, not
// the token) and refuses to use such a link again: an opened link is single-use in the browser as
// well. A link opened while this page is shown (hashchange) is handled the same way.
"use strict";
(function () {
  const INVITE = /^#invite=([A-Za-z0-9_-]{1,100})$/;
  const STORE = "reader-study-opened-invitations";

  function take() {
    const hash = window.location.hash;
    if (!hash.startsWith("#invite=")) return null;
    history.replaceState(null, "", window.location.pathname + window.location.search);
    const m = INVITE.exec(hash);
    return m ? m[1] : "";
  }

  // 53-bit string hash (cyrb53): a mark that says "opened here" without keeping the token
  function mark(token) {
    let h1 = 0xdeadbeef, h2 = 0x41c6ce57;
    for (let i = 0; i < token.length; i++) {
      const c = token.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 2654435761);
      h2 = Math.imul(h2 ^ c, 1597334677);
    }
    h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
    h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
    return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(36);
  }

  // true the first time this browser opens the link; false afterwards (storage off: true)
  function firstOpening(token) {
    try {
      const seen = JSON.parse(window.localStorage.getItem(STORE) || "[]");
      const m = mark(token);
      if (seen.includes(m)) return false;
      seen.push(m);
      window.localStorage.setItem(STORE, JSON.stringify(seen.slice(-200)));
    } catch (err) {
      // no storage (private mode, disabled): the server's one-time rule still holds
    }
    return true;
  }

  function say(text) {
    const p = document.getElementById("invite-message");
    p.textContent = text;
    p.hidden = false;
  }

  function use(token) {
    if (token === null) return;
    if (!token) { say("This invitation link is damaged; ask the study organiser for a new one."); return; }
    if (!firstOpening(token)) {
      say("This invitation link was opened in this browser before. Links work once: ask the " +
          "study organiser for a new one (or use the session you started with it).");
      return;
    }
    document.getElementById("token").value = token;
    say("Logging in\u2026");
    document.getElementById("invite-message").className = "hint";
    document.getElementById("login-form").submit();
  }

  const token = take();  // before the page is even parsed
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => use(token));
  } else {
    use(token);
  }
  window.addEventListener("hashchange", () => use(take()));
})();
