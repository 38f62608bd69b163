// Reader-study case page: loads the panel volumes (raw little-endian uint16, i fastest,
// value = offset + q * scale) and draws every panel in one shared view state: plane (axial = k
// slice, coronal = j, sagittal = i), crosshair point (i, j, k; its coordinate along the plane's
// normal is the slice), zoom and pan, window/level per kind (image or subtraction). Every change
// redraws all panels, so they stay in sync. Each volume is fetched once per page and kept in
// memory (the server sends image data "no-store": nothing of it reaches the browser's disk cache).
// Also checks the ranking (complete, distinct) before saving, measures the time the page was
// visible, and saves with fetch: when the save fails (the session ended, the server is away) the
// ranking stays in the page, the reason is shown in words, and the reader can log in again here
// with a new invitation link and save it.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("case-data").textContent);
  const N = data.shape;          // [NI, NJ, NK]
  const S = data.spacing;        // mm along i, j, k
  const viewer = document.getElementById("viewer");
  const canvases = Array.from(viewer.querySelectorAll("canvas.panel"));
  const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  // plane -> [horizontal axis u, vertical axis v (drawn upwards), normal axis]
  const PLANES = { axial: [0, 1, 2], coronal: [0, 2, 1], sagittal: [1, 2, 0] };
  const MAX_ZOOM = 32;

  const state = {
    plane: "axial",
    cursor: [Math.floor(N[0] / 2), Math.floor(N[1] / 2), Math.floor((N[2] - 1) / 2)],
    zoom: 1,
    center: null,   // [u, v] of the view centre, continuous voxel coordinates of the plane
    crosshair: true,
    tool: "window",
    view: "both",
    win: {
      image: { lo: data.presets.image[0].lo, hi: data.presets.image[0].hi },
      subtraction: { lo: data.presets.subtraction[1].lo, hi: data.presets.subtraction[1].hi },
    },
    loaded: false,
    renders: 0,
  };
  const volumes = {};  // data-volume -> Uint16Array
  const axes = () => PLANES[state.plane];
  const dims = () => { const [u, v] = axes(); return [N[u], N[v]]; };
  function resetCenter() { const [nu, nv] = dims(); state.center = [nu / 2, nv / 2]; }
  resetCenter();

  function urlOf(key) {
    if (key in data && typeof data[key] === "string") return data[key];
    const [label, kind] = key.split(":");
    return data.panels[label][kind];
  }

  async function load(key) {
    const response = await fetch(urlOf(key), { credentials: "same-origin" });
    if (!response.ok) throw new Error("cannot load image data (" + response.status + ")");
    const buffer = await response.arrayBuffer();
    const n = N[0] * N[1] * N[2];
    if (buffer.byteLength !== 2 * n) throw new Error("image data has the wrong size");
    let q;
    if (littleEndian) {
      q = new Uint16Array(buffer);
    } else {
      const view = new DataView(buffer);
      q = new Uint16Array(n);
      for (let t = 0; t < n; t++) q[t] = view.getUint16(2 * t, true);
    }
    volumes[key] = q;
  }

  function kindRange(kind) {
    const p = data.presets[kind];
    let lo = Infinity, hi = -Infinity;
    for (const w of p) { lo = Math.min(lo, w.lo); hi = Math.max(hi, w.hi); }
    const span = hi - lo;
    return kind === "subtraction" ? { lo: -hi * 2, hi: hi * 2, span: 4 * hi }
                                  : { lo: lo - span / 2, hi: hi + span / 2, span: 2 * span };
  }
  const ranges = { image: kindRange("image"), subtraction: kindRange("subtraction") };

  // ---------------------------------------------------------------- geometry
  let cssSize = 200;  // every panel is a cssSize x cssSize square
  function sizeCanvases() {
    const columns = Number(viewer.dataset.columns);
    viewer.style.setProperty("--columns", String(columns));
    const avail = Math.max(200, viewer.clientWidth);
    cssSize = Math.max(90, Math.min(340, Math.floor(avail / columns) - 12));
    const dpr = window.devicePixelRatio || 1;
    for (const c of canvases) {
      c.width = Math.round(cssSize * dpr); c.height = Math.round(cssSize * dpr);
      c.style.width = cssSize + "px"; c.style.height = cssSize + "px";
    }
  }

  // css pixels per voxel along u and v at the current zoom (isotropic in mm)
  function pixelScale() {
    const [u, v] = axes();
    const fit = Math.min(cssSize / (N[u] * S[u]), cssSize / (N[v] * S[v]));
    return [fit * state.zoom * S[u], fit * state.zoom * S[v]];
  }
  // canvas css point -> continuous plane coordinates (u, v)
  function toPlane(x, y) {
    const [su, sv] = pixelScale();
    return [state.center[0] + (x - cssSize / 2) / su, state.center[1] - (y - cssSize / 2) / sv];
  }

  // ---------------------------------------------------------------- drawing
  const planeCanvas = document.createElement("canvas");
  function planeGrey(key) {
    // grey values of the current plane through the crosshair, rows top (v = Nv-1) to bottom
    const q = volumes[key];
    const kind = canvases.find((c) => c.dataset.volume === key).dataset.kind;
    const w = state.win[kind];
    const [u, v, n] = axes();
    const [nu, nv] = [N[u], N[v]];
    const stride = [1, N[0], N[0] * N[1]];
    const base = state.cursor[n] * stride[n];
    const gain = 255 / Math.max(w.hi - w.lo, 1e-12);
    const a = data.scale * gain, b = (data.offset - w.lo) * gain;
    const out = new Uint8ClampedArray(nu * nv);
    for (let y = 0; y < nv; y++) {
      const off = base + (nv - 1 - y) * stride[v];
      for (let x = 0; x < nu; x++) out[y * nu + x] = a * q[off + x * stride[u]] + b;
    }
    return { width: nu, height: nv, grey: out };
  }

  function draw(canvas) {
    const key = canvas.dataset.volume;
    if (!volumes[key]) return;
    const { width, height, grey } = planeGrey(key);
    planeCanvas.width = width; planeCanvas.height = height;
    const pctx = planeCanvas.getContext("2d");
    const img = pctx.createImageData(width, height);
    for (let t = 0; t < grey.length; t++) {
      const o = 4 * t;
      img.data[o] = img.data[o + 1] = img.data[o + 2] = grey[t];
      img.data[o + 3] = 255;
    }
    pctx.putImageData(img, 0, 0);
    const ctx = canvas.getContext("2d");
    const dpr = canvas.width / cssSize;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, cssSize, cssSize);
    ctx.imageSmoothingEnabled = false;
    const [su, sv] = pixelScale();
    const x0 = cssSize / 2 - state.center[0] * su;
    const y0 = cssSize / 2 - (height - state.center[1]) * sv;
    ctx.drawImage(planeCanvas, x0, y0, width * su, height * sv);
    if (state.crosshair) {
      const [u, v] = axes();
      const x = x0 + (state.cursor[u] + 0.5) * su;
      const y = y0 + (height - state.cursor[v] - 0.5) * sv;
      ctx.strokeStyle = "rgba(255, 210, 0, 0.7)";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(x, 0); ctx.lineTo(x, cssSize);
      ctx.moveTo(0, y); ctx.lineTo(cssSize, y);
      ctx.stroke();
    }
  }

  function fmt(x) { return Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(3); }

  function render() {
    for (const c of canvases) draw(c);
    const n = axes()[2];
    const slider = document.getElementById("slice");
    slider.max = String(N[n] - 1);
    slider.value = String(state.cursor[n]);
    document.getElementById("slice-readout").textContent =
      (state.cursor[n] + 1) + " / " + N[n] + " (" + "ijk"[n] + ")";
    document.getElementById("zoom-readout").textContent = "zoom " + state.zoom.toFixed(2) + "x";
    for (const kind of ["image", "subtraction"]) {
      const w = state.win[kind];
      const level = (w.lo + w.hi) / 2, width = w.hi - w.lo;
      document.getElementById(kind + "-level").value = String(level);
      document.getElementById(kind + "-width").value = String(width);
      document.getElementById(kind + "-readout").textContent =
        "L " + fmt(level) + "  W " + fmt(width);
    }
    const d = viewer.dataset;
    d.plane = state.plane;
    d.slice = String(state.cursor[n]);
    d.cursor = state.cursor.join(",");
    d.zoom = String(state.zoom);
    d.center = state.center.join(",");
    d.imageWindow = state.win.image.lo + "," + state.win.image.hi;
    d.subtractionWindow = state.win.subtraction.lo + "," + state.win.subtraction.hi;
    state.renders += 1;
  }

  // ---------------------------------------------------------------- state changes
  function setSlice(s) {
    const n = axes()[2];
    state.cursor[n] = Math.max(0, Math.min(N[n] - 1, Math.round(s)));
    render();
  }
  function setPlane(plane) {
    if (!(plane in PLANES)) return;
    state.plane = plane;
    state.zoom = 1;
    resetCenter();
    for (const b of document.querySelectorAll("#plane-toggle button")) {
      b.classList.toggle("active", b.dataset.plane === plane);
    }
    render();
  }
  // zoom by `factor` keeping the plane point under canvas point (x, y) in place
  function zoomBy(factor, x = cssSize / 2, y = cssSize / 2) {
    const p = toPlane(x, y);
    const z = Math.max(1, Math.min(MAX_ZOOM, state.zoom * factor));
    const r = state.zoom / z;
    state.center = [p[0] - (p[0] - state.center[0]) * r, p[1] - (p[1] - state.center[1]) * r];
    state.zoom = z;
    render();
  }
  function panBy(dx, dy) {  // css pixels
    const [su, sv] = pixelScale();
    state.center = [state.center[0] - dx / su, state.center[1] + dy / sv];
    render();
  }
  function resetView() { state.zoom = 1; resetCenter(); render(); }
  function setCursorAt(x, y) {
    const [u, v] = axes();
    const p = toPlane(x, y);
    state.cursor[u] = Math.max(0, Math.min(N[u] - 1, Math.floor(p[0])));
    state.cursor[v] = Math.max(0, Math.min(N[v] - 1, Math.floor(p[1])));
    render();
  }
  function setWindow(kind, level, width) {
    width = Math.max(width, ranges[kind].span * 1e-4);
    state.win[kind] = { lo: level - width / 2, hi: level + width / 2 };
    render();
  }
  function setTool(tool) {
    state.tool = tool;
    for (const b of document.querySelectorAll("#tool-toggle button")) {
      b.classList.toggle("active", b.dataset.tool === tool);
    }
    viewer.dataset.tool = tool;
  }
  function setCrosshair(on) {
    state.crosshair = on;
    document.getElementById("show-crosshair").checked = on;
    render();
  }
  function setView(view) {
    state.view = view;
    viewer.classList.remove("view-both", "view-warped", "view-subtraction");
    viewer.classList.add("view-" + view);
    for (const b of document.querySelectorAll("#view-toggle button")) {
      b.classList.toggle("active", b.dataset.view === view);
    }
  }

  // ---------------------------------------------------------------- controls
  function setupControls() {
    for (const kind of ["image", "subtraction"]) {
      const r = ranges[kind];
      const level = document.getElementById(kind + "-level");
      const width = document.getElementById(kind + "-width");
      level.min = String(r.lo); level.max = String(r.hi); level.step = String(r.span / 1000);
      width.min = String(r.span / 1000); width.max = String(r.span); width.step = String(r.span / 1000);
      const update = () => setWindow(kind, Number(level.value), Number(width.value));
      level.addEventListener("input", update);
      width.addEventListener("input", update);
    }
    for (const b of document.querySelectorAll("button.preset")) {
      b.addEventListener("click", () => {
        const p = data.presets[b.dataset.kind][Number(b.dataset.index)];
        state.win[b.dataset.kind] = { lo: p.lo, hi: p.hi };
        render();
      });
    }
    const slice = document.getElementById("slice");
    slice.addEventListener("input", () => setSlice(Number(slice.value)));
    for (const b of document.querySelectorAll("#plane-toggle button")) {
      b.addEventListener("click", () => setPlane(b.dataset.plane));
    }
    for (const b of document.querySelectorAll("#tool-toggle button")) {
      b.addEventListener("click", () => setTool(b.dataset.tool));
    }
    for (const b of document.querySelectorAll("#view-toggle button")) {
      b.addEventListener("click", () => setView(b.dataset.view));
    }
    document.getElementById("zoom-in").addEventListener("click", () => zoomBy(1.5));
    document.getElementById("zoom-out").addEventListener("click", () => zoomBy(1 / 1.5));
    document.getElementById("reset-view").addEventListener("click", resetView);
    const cross = document.getElementById("show-crosshair");
    cross.addEventListener("change", () => setCrosshair(cross.checked));
  }

  function setupPointer() {
    let drag = null, wheel = 0;
    for (const c of canvases) {
      const local = (e) => { const r = c.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
      c.addEventListener("wheel", (e) => {
        e.preventDefault();
        const delta = e.deltaMode === 1 ? 40 * e.deltaY : e.deltaMode === 2 ? 800 * e.deltaY : e.deltaY;
        if (e.ctrlKey || e.metaKey) {
          const [x, y] = local(e);
          zoomBy(Math.exp(-delta / 300), x, y);
          return;
        }
        // one slice per wheel notch; small trackpad deltas accumulate first
        wheel += delta;
        if (Math.abs(wheel) >= 50) { setSlice(state.cursor[axes()[2]] + Math.sign(wheel)); wheel = 0; }
      }, { passive: false });
      c.addEventListener("pointerdown", (e) => {
        const [x, y] = local(e);
        let mode = state.tool;
        if (e.shiftKey || e.button === 1) mode = "pan";
        if (mode === "crosshair") { setCursorAt(x, y); }
        const w = state.win[c.dataset.kind];
        drag = { mode, kind: c.dataset.kind, x: e.clientX, y: e.clientY, lx: e.clientX, ly: e.clientY,
                 level: (w.lo + w.hi) / 2, width: w.hi - w.lo, zoom: state.zoom, px: x, py: y };
        c.setPointerCapture(e.pointerId);
        e.preventDefault();
      });
      c.addEventListener("pointermove", (e) => {
        if (!drag) return;
        if (drag.mode === "window") {
          const span = ranges[drag.kind].span;
          setWindow(drag.kind, drag.level - (e.clientY - drag.y) * span / 600,
                    drag.width + (e.clientX - drag.x) * span / 600);
        } else if (drag.mode === "pan") {
          panBy(e.clientX - drag.lx, e.clientY - drag.ly);
        } else if (drag.mode === "zoom") {
          const target = drag.zoom * Math.exp(-(e.clientY - drag.y) / 150);
          zoomBy(target / state.zoom, drag.px, drag.py);
        } else if (drag.mode === "crosshair") {
          const [x, y] = local(e);
          setCursorAt(x, y);
        }
        drag.lx = e.clientX; drag.ly = e.clientY;
      });
      const end = () => { drag = null; };
      c.addEventListener("pointerup", end);
      c.addEventListener("pointercancel", end);
      c.addEventListener("dblclick", resetView);
    }
    document.addEventListener("keydown", (e) => {
      const t = e.target;
      if (t instanceof HTMLTextAreaElement || (t instanceof HTMLInputElement && t.type === "range")) return;
      const n = axes()[2];
      if (e.key === "ArrowUp" || e.key === "PageUp") { setSlice(state.cursor[n] + 1); e.preventDefault(); }
      else if (e.key === "ArrowDown" || e.key === "PageDown") { setSlice(state.cursor[n] - 1); e.preventDefault(); }
      else if (e.key === "+" || e.key === "=") zoomBy(1.5);
      else if (e.key === "-") zoomBy(1 / 1.5);
      else if (e.key === "0") resetView();
      else if (e.key === "x" || e.key === "X") setCrosshair(!state.crosshair);
      else if (N[2] > 1 && "123".includes(e.key)) setPlane(["axial", "coronal", "sagittal"][Number(e.key) - 1]);
      else if (e.key === "t" || e.key === "T") setView(state.view === "warped" ? "subtraction" : "warped");
    });
  }

  // ---------------------------------------------------------------- answer form
  function setupRanking() {
    const form = document.getElementById("ranking-form");
    const message = document.getElementById("rank-message");
    const save = document.getElementById("save-button");
    const cannot = document.getElementById("cannot-judge");
    const locked = save.disabled;
    let activeMs = 0, since = document.visibilityState === "visible" ? Date.now() : null;
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") since = Date.now();
      else if (since !== null) { activeMs += Date.now() - since; since = null; }
    });
    // a page restored from the back/forward cache starts a new visit
    window.addEventListener("pageshow", (e) => { if (e.persisted) { activeMs = 0; since = Date.now(); } });
    function check() {
      const skip = cannot !== null && cannot.checked;
      for (const r of form.querySelectorAll("input.rank")) r.disabled = locked || skip;
      const ranks = {};
      const missing = [];
      for (const label of data.labels) {
        const chosen = form.querySelector('input[name="rank_' + label + '"]:checked');
        if (chosen) ranks[label] = Number(chosen.value); else missing.push(label);
      }
      const byRank = {};
      for (const [label, r] of Object.entries(ranks)) (byRank[r] = byRank[r] || []).push(label);
      const ties = Object.entries(byRank).filter(([, ls]) => ls.length > 1);
      let text = "";
      if (!skip) {
        if (missing.length) text = "Rank every result (missing: " + missing.join(", ") + "). ";
        for (const [r, ls] of ties) text += "Rank " + r + " is given to " + ls.join(" and ") + "; ranks must differ. ";
      }
      message.textContent = text.trim();
      message.className = Object.keys(ranks).length ? "error" : "hint";
      const valid = skip || (!missing.length && !ties.length);
      if (!locked) save.disabled = !valid;
      form.dataset.valid = String(valid);
      return valid;
    }
    form.addEventListener("change", check);

    function say(text) { message.className = "error"; message.textContent = text; }
    let busy = false;
    async function submitAnswer() {
      if (busy) return;
      busy = true;
      if (since !== null) activeMs += Date.now() - since;
      since = document.visibilityState === "visible" ? Date.now() : null;
      document.getElementById("active-ms").value = String(Math.round(activeMs));
      const body = new URLSearchParams(new FormData(form));
      let response = null, answer = null;
      try {
        response = await fetch(form.action, {
          method: "POST", body, credentials: "same-origin", headers: { Accept: "application/json" },
        });
        answer = await response.json();
      } catch (err) {
        answer = null;
      }
      busy = false;
      if (response && response.ok && answer && answer.next) {
        activeMs = 0;  // this time is now saved; a second save counts only what follows
        window.location.assign(answer.next);
        return;
      }
      // not saved: the ranking and the measured time stay in the page
      if (response && response.status === 401) { sessionEnded(answer); return; }
      if (!response) { say("The server could not be reached: nothing was saved, your ranking is kept in this page. Press Save again."); return; }
      const problems = answer && (answer.errors || (answer.error ? [answer.error] : null));
      say("Not saved: " + (problems ? problems.join(" ") : "the server answered " + response.status + "."));
    }
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (check()) submitAnswer();
    });

    // the session ended: say so, keep the ranking, log in again in this page, then save
    const ended = document.getElementById("session-ended");
    const relogin = document.getElementById("relogin-message");
    let loginCsrf = "";
    function sessionEnded(answer) {
      loginCsrf = (answer && answer.login_csrf) || "";
      document.getElementById("session-ended-message").textContent =
        (answer && answer.error) || "Your session has ended; nothing was saved.";
      say("Not saved: your session has ended (see below). Your ranking is kept in this page.");
      ended.hidden = false;
      document.getElementById("relogin-token").focus();
    }
    document.getElementById("relogin-button").addEventListener("click", async () => {
      const text = document.getElementById("relogin-token").value.trim();
      const m = /#invite=([A-Za-z0-9_-]+)$/.exec(text) || /^([A-Za-z0-9_-]+)$/.exec(text);
      if (!m) { relogin.textContent = "Paste the whole new invitation link (\u2026/login#invite=\u2026)."; return; }
      let response = null, answer = null;
      try {
        response = await fetch(ended.dataset.login, {
          method: "POST", body: new URLSearchParams({ token: m[1], csrf_token: loginCsrf }),
          credentials: "same-origin", headers: { Accept: "application/json" },
        });
        answer = await response.json();
      } catch (err) {
        answer = null;
      }
      if (!response) { relogin.textContent = "The server could not be reached; try again."; return; }
      if (!response.ok) {
        if (answer && answer.login_csrf) loginCsrf = answer.login_csrf;
        relogin.textContent = (answer && answer.error) || ("Login failed (" + response.status + ").");
        return;
      }
      loginCsrf = answer.csrf_token;  // logged in: the session's own token from now on
      document.getElementById("relogin-token").value = "";
      if (answer.reader !== form.dataset.reader) {
        relogin.textContent = "That invitation is another reader's (" + answer.reader + "); this " +
          "ranking was not saved. Paste your own new link.";
        return;
      }
      form.querySelector('input[name="csrf_token"]').value = answer.csrf_token;
      relogin.textContent = "";
      ended.hidden = true;
      submitAnswer();
    });
    check();
  }

  window.readerStudy = { state, setSlice, setPlane, setWindow, setView, zoomBy, panBy, resetView,
                         setCursorAt, planeGrey, pixelScale, get cssSize() { return cssSize; } };
  setupControls();
  setupPointer();
  setupRanking();
  setTool("window");
  sizeCanvases();
  window.addEventListener("resize", () => { sizeCanvases(); render(); });
  const keys = new Set(canvases.map((c) => c.dataset.volume));
  Promise.all(Array.from(keys, load)).then(() => {
    state.loaded = true;
    document.getElementById("loading").remove();
    viewer.dataset.loaded = "true";
    render();
  }).catch((err) => {
    document.getElementById("loading").textContent = "Error: " + err.message;
  });
})();
