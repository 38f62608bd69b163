// Reader-study case page: loads the panel volumes (raw little-endian uint16, i fastest,
// value = offset + q * scale), draws slice k of every panel on its canvas with the window of
// its kind (image or subtraction), keeps slice and window/level synchronised across panels,
// switches warped/subtraction rows, and checks the ranking (complete, distinct) before submit.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("case-data").textContent);
  const [NI, NJ, NK] = data.shape;
  const [SI, SJ] = data.spacing;
  const viewer = document.getElementById("viewer");
  const canvases = Array.from(viewer.querySelectorAll("canvas.panel"));
  const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

  const state = {
    slice: Math.floor((NK - 1) / 2),
    view: "both",
    win: {
      image: { lo: data.presets.image[0].lo, hi: data.presets.image[0].hi },
      subtraction: { lo: data.presets.subtraction[1].lo, hi: data.presets.subtraction[1].hi },
    },
    loaded: false,
    renders: 0,
  };
  const volumes = {};  // "fixed" | "A:warped" | ... -> Uint16Array (value = offset + scale * q)

  function urlOf(key) {
    if (key === "fixed") return data.fixed;
    const [label, kind] = key.split(":");
    return data.panels[label][kind];
  }

  async function load(key) {
    const response = await fetch(urlOf(key), { credentials: "same-origin" });
    if (!response.ok) throw new Error("cannot load image data (" + response.status + ")");
    const buffer = await response.arrayBuffer();
    const n = NI * NJ * NK;
    if (buffer.byteLength !== 2 * n) throw new Error("image data has the wrong size");
    let q;
    if (littleEndian) {
      q = new Uint16Array(buffer);
    } else {
      const view = new DataView(buffer);
      q = new Uint16Array(n);
      for (let t = 0; t < n; t++) q[t] = view.getUint16(2 * t, true);
    }
    volumes[key] = q;  // decoded per drawn pixel: memory stays 2 bytes per voxel
  }

  // full range of each kind, for the sliders
  function kindRange(kind) {
    const p = data.presets[kind];
    let lo = Infinity, hi = -Infinity;
    for (const w of p) { lo = Math.min(lo, w.lo); hi = Math.max(hi, w.hi); }
    const span = hi - lo;
    return kind === "subtraction" ? { lo: -hi * 2, hi: hi * 2, span: 4 * hi }
                                  : { lo: lo - span / 2, hi: hi + span / 2, span: 2 * span };
  }
  const ranges = { image: kindRange("image"), subtraction: kindRange("subtraction") };

  function sizeCanvases() {
    const columns = Number(viewer.dataset.columns);
    viewer.style.setProperty("--columns", String(columns));
    const avail = Math.max(200, viewer.clientWidth - 140);
    const width = Math.max(80, Math.min(360, Math.floor(avail / columns) - 12));
    const height = Math.round(width * (NJ * SJ) / (NI * SI));
    for (const c of canvases) {
      c.width = NI; c.height = NJ;
      c.style.width = width + "px";
      c.style.height = height + "px";
    }
  }

  function draw(canvas) {
    const q = volumes[canvas.dataset.volume];
    if (!q) return;
    const w = state.win[canvas.dataset.kind];
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(NI, NJ);
    const px = img.data;
    const base = state.slice * NI * NJ;
    // grey = (offset + scale * q - lo) * 255 / (hi - lo) = a * q + b
    const gain = 255 / Math.max(w.hi - w.lo, 1e-12);
    const a = data.scale * gain, b = (data.offset - w.lo) * gain;
    for (let j = 0; j < NJ; j++) {
      const row = (NJ - 1 - j) * NI;  // j increases upwards
      for (let i = 0; i < NI; i++) {
        let v = a * q[base + j * NI + i] + b;
        v = v < 0 ? 0 : v > 255 ? 255 : v;
        const o = 4 * (row + i);
        px[o] = px[o + 1] = px[o + 2] = v;
        px[o + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
  }

  function fmt(x) { return Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(3); }

  function render() {
    for (const c of canvases) draw(c);
    document.getElementById("slice").value = String(state.slice);
    document.getElementById("slice-readout").textContent = (state.slice + 1) + " / " + NK;
    for (const kind of ["image", "subtraction"]) {
      const w = state.win[kind];
      const level = (w.lo + w.hi) / 2, width = w.hi - w.lo;
      document.getElementById(kind + "-level").value = String(level);
      document.getElementById(kind + "-width").value = String(width);
      document.getElementById(kind + "-readout").textContent =
        "L " + fmt(level) + "  W " + fmt(width);
    }
    viewer.dataset.slice = String(state.slice);
    viewer.dataset.imageWindow = state.win.image.lo + "," + state.win.image.hi;
    viewer.dataset.subtractionWindow = state.win.subtraction.lo + "," + state.win.subtraction.hi;
    state.renders += 1;
  }

  function setSlice(k) {
    state.slice = Math.max(0, Math.min(NK - 1, k));
    render();
  }

  function setWindow(kind, level, width) {
    const minWidth = ranges[kind].span * 1e-4;
    width = Math.max(width, minWidth);
    state.win[kind] = { lo: level - width / 2, hi: level + width / 2 };
    render();
  }

  function setupSliders() {
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
  }

  function setupPointer() {
    let drag = null, wheel = 0;
    for (const c of canvases) {
      c.addEventListener("wheel", (e) => {
        e.preventDefault();
        // one slice per wheel notch; small trackpad deltas accumulate first
        wheel += e.deltaMode === 1 ? 40 * e.deltaY : e.deltaMode === 2 ? 800 * e.deltaY : e.deltaY;
        if (Math.abs(wheel) >= 50) { setSlice(state.slice + Math.sign(wheel)); wheel = 0; }
      }, { passive: false });
      c.addEventListener("pointerdown", (e) => {
        const w = state.win[c.dataset.kind];
        drag = { kind: c.dataset.kind, x: e.clientX, y: e.clientY,
                 level: (w.lo + w.hi) / 2, width: w.hi - w.lo };
        c.setPointerCapture(e.pointerId);
        e.preventDefault();
      });
      c.addEventListener("pointermove", (e) => {
        if (!drag) return;
        const span = ranges[drag.kind].span;
        setWindow(drag.kind, drag.level - (e.clientY - drag.y) * span / 600,
                  drag.width + (e.clientX - drag.x) * span / 600);
      });
      const end = () => { drag = null; };
      c.addEventListener("pointerup", end);
      c.addEventListener("pointercancel", end);
    }
    document.addEventListener("keydown", (e) => {
      if (e.target instanceof HTMLInputElement && e.target.type === "range") return;
      if (e.key === "ArrowUp" || e.key === "PageUp") { setSlice(state.slice + 1); e.preventDefault(); }
      else if (e.key === "ArrowDown" || e.key === "PageDown") { setSlice(state.slice - 1); e.preventDefault(); }
      else if (e.key === "t" || e.key === "T") {
        setView(state.view === "warped" ? "subtraction" : "warped");
      }
    });
  }

  function setView(view) {
    state.view = view;
    viewer.classList.remove("view-both", "view-warped", "view-subtraction");
    viewer.classList.add("view-" + view);
    for (const b of document.querySelectorAll("#view-toggle button")) {
      b.classList.toggle("active", b.dataset.view === view);
    }
  }

  function setupToggle() {
    for (const b of document.querySelectorAll("#view-toggle button")) {
      b.addEventListener("click", () => setView(b.dataset.view));
    }
  }

  // ranking: every label exactly one rank, ranks distinct
  function setupRanking() {
    const form = document.getElementById("ranking-form");
    const message = document.getElementById("rank-message");
    const save = document.getElementById("save-button");
    const locked = save.disabled;
    let activeMs = 0, since = document.visibilityState === "visible" ? Date.now() : null;
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") since = Date.now();
      else if (since !== null) { activeMs += Date.now() - since; since = null; }
    });
    function check() {
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
      if (missing.length) text = "Rank every result (missing: " + missing.join(", ") + "). ";
      for (const [r, ls] of ties) text += "Rank " + r + " is given to " + ls.join(" and ") + "; ranks must differ. ";
      message.textContent = text.trim();
      // nothing chosen yet: a neutral hint rather than an error
      message.className = Object.keys(ranks).length ? "error" : "hint";
      const valid = !missing.length && !ties.length;
      if (!locked) save.disabled = !valid;
      form.dataset.valid = String(valid);
      return valid;
    }
    form.addEventListener("change", check);
    form.addEventListener("submit", (e) => {
      if (!check()) { e.preventDefault(); return; }
      if (since !== null) activeMs += Date.now() - since;
      since = Date.now();
      document.getElementById("active-ms").value = String(Math.round(activeMs));
    });
    check();
  }

  window.readerStudy = { state, setSlice, setWindow, setView };
  setupSliders();
  setupPointer();
  setupToggle();
  setupRanking();
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
