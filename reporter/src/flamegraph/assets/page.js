// memtrace's interactive report: every view is computed here from the data the report
// embedded (reporter/src/flamegraph/data.rs), so no control needs a re-run. Names are only
// ever put in the page as text (textContent, createTextNode), never as markup.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("memtrace-data").textContent);
  const SVGNS = "http://www.w3.org/2000/svg";
  const K = { PYTHON: 0, NATIVE: 1, INTERPRETER: 2, IMPORT: 3, UNKNOWN: 4, OTHER: 5, PROCESS: 6 };
  const FRAME_H = 16;
  const NB = D.buckets.hwm.length;

  // ---- numbers for people ----
  // One decimal as the command line prints it (Rust's formatting): an exact tie, which only a
  // value ending in .25 or .75 is, goes to the even digit (toFixed rounds it up: 781.25 KiB
  // read 781.3 here and 781.2 in `memtrace stats`).
  function fixed1(v) {
    const q = v * 4;
    if (Number.isInteger(q) && q % 2 !== 0) {
      const lo = Math.floor(v * 10);
      return ((lo % 2 === 0 ? lo : lo + 1) / 10).toFixed(1);
    }
    return v.toFixed(1);
  }
  function size(n) {
    const units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if (n < 1024) return n + " B";
    let v = n / 1024, u = 0;
    while (v >= 1024 && u + 1 < units.length) { v /= 1024; u++; }
    if (fixed1(v) === "1024.0" && u + 1 < units.length) { v /= 1024; u++; }
    return fixed1(v) + " " + units[u];
  }
  function count(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ","); }
  function exact(n) { return count(n) + " bytes"; }
  function secs(s) {
    if (s < 1e-3) return (s * 1e6).toFixed(0) + " µs";
    if (s < 1) return (s * 1e3).toFixed(1) + " ms";
    if (s < 120) return s.toFixed(2) + " s";
    return (s / 60).toFixed(1) + " min";
  }
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  /** A size as text with its exact bytes on hover. */
  function sized(n) { return el("span", { title: exact(n) }, size(n)); }

  // ---- state, mirrored in the URL's fragment ----
  const state = {
    view: D.initial.view,      // peak | leaks | temporary | all | moment | range
    at: -1, from: -1, to: -1,  // buckets of a moment or a range
    threads: D.initial.split_threads ? "each" : (typeof D.initial.thread === "number" ? String(D.initial.thread) : "all"),
    inverted: D.initial.inverted,
    imports: true,             // hide the import machinery
    interp: true,              // hide the interpreter's frames between Python frames
    unknown: false,            // hide <unknown>
    sort: "own", asc: false, filter: "", zoom: "",
    process: "all",            // a family's page: every process, or one (its index)
  };
  function toFragment() {
    const p = new URLSearchParams();
    p.set("view", state.view);
    if (state.view === "moment") p.set("at", state.at);
    if (state.view === "range") p.set("range", state.from + "-" + state.to);
    p.set("threads", state.threads);
    p.set("inverted", state.inverted ? 1 : 0);
    p.set("imports", state.imports ? "hide" : "show");
    p.set("interpreter", state.interp ? "hide" : "show");
    p.set("unknown", state.unknown ? "hide" : "show");
    p.set("sort", state.sort + (state.asc ? "-asc" : "-desc"));
    if (state.filter) p.set("filter", state.filter);
    if (state.zoom) p.set("zoom", state.zoom);
    if (D.family) p.set("process", state.process);
    return p.toString();
  }
  function fromFragment(hash) {
    const p = new URLSearchParams(hash.replace(/^#/, ""));
    const int = (s) => { const v = parseInt(s, 10); return Number.isFinite(v) ? Math.max(0, Math.min(NB - 1, v)) : -1; };
    const v = p.get("view");
    if (["peak", "leaks", "temporary", "all"].includes(v)) state.view = v;
    if (v === "moment" && int(p.get("at")) >= 0) { state.view = v; state.at = int(p.get("at")); }
    if (v === "range" && p.get("range")) {
      const [a, b] = p.get("range").split("-").map(int);
      if (a >= 0 && b >= 0) { state.view = v; state.from = Math.min(a, b); state.to = Math.max(a, b); }
    }
    const t = p.get("threads");
    if (t === "all" || t === "each" || (t !== null && /^\d+$/.test(t) && +t < D.threads.length)) state.threads = t;
    if (p.has("inverted")) state.inverted = p.get("inverted") === "1";
    if (p.has("imports")) state.imports = p.get("imports") !== "show";
    if (p.has("interpreter")) state.interp = p.get("interpreter") !== "show";
    if (p.has("unknown")) state.unknown = p.get("unknown") === "hide";
    const s = p.get("sort");
    if (s) { const [c, d] = s.split("-"); if (COLUMNS.some((x) => x.key === c)) { state.sort = c; state.asc = d === "asc"; } }
    state.filter = p.get("filter") || "";
    state.zoom = p.get("zoom") || "";
    if (D.family) familyFromFragment(p);
  }
  let writing = false;
  function saveFragment() {
    const f = "#" + toFragment();
    if (location.hash === f) return;
    writing = true;
    try { history.replaceState(null, "", f); } catch (e) { location.hash = f; }
    writing = false;
  }

  // ---- the values of a view ----
  /** The value of a history [a, b0, bytes0, count0, b1, ...] at snapshot h. */
  function valueAt(h, at) {
    let v = 0, c = 0;
    for (let i = 1; i < h.length; i += 3) {
      if (h[i] > at) break;
      v = h[i + 1]; c = h[i + 2];
    }
    return [v, c];
  }
  /** The bucket of a range's high-water mark. */
  function rangeTop(from, to) {
    let best = from;
    for (let b = from; b <= to; b++) if (D.buckets.hwm[b] > D.buckets.hwm[best]) best = b;
    return best;
  }
  /** [bytes, allocations] of each group in the current view. */
  function values() {
    const key = { peak: "peak", leaks: "leak", temporary: "temp", all: "all" }[state.view];
    if (key) return D.groups.map((g) => g[key]);
    let at, lo;
    if (state.view === "moment") { at = state.at; lo = 0; }
    else { at = rangeTop(state.from, state.to); lo = state.from; }
    return D.groups.map((g) => {
      let b = 0, c = 0;
      for (const h of g.live) {
        if (h[0] < lo || h[0] > at) continue;
        const [v, n] = valueAt(h, at);
        b += v; c += n;
      }
      return [b, c];
    });
  }

  // ---- frames shown ----
  function shownFrames(stack) {
    let frames = D.stacks[stack];
    if (state.imports) frames = frames.filter((f) => D.frames[f][1] !== K.IMPORT);
    if (state.interp) {
      // Above the outermost Python frame: how the interpreter got there (_start, libc,
      // Py_RunMain, a thread's start). Between Python frames: the interpreter's own frames
      // (the evaluation loop, calls); a library's frames there stay. Below the innermost
      // Python frame: what the line called, all kept.
      let first = -1, last = -1;
      frames.forEach((f, i) => {
        const k = D.frames[f][1];
        if (k === K.PYTHON || k === K.IMPORT) { if (first < 0) first = i; last = i; }
      });
      if (first >= 0) {
        frames = frames.filter((f, i) => i >= last || D.frames[f][1] === K.PROCESS || (i >= first && D.frames[f][1] !== K.INTERPRETER));
      }
    }
    return frames;
  }
  function isUnknown(stack) {
    const s = D.stacks[stack];
    return s.length === 1 && D.frames[s[0]][1] === K.UNKNOWN;
  }
  /** The groups of the view with the filters applied: [{frames, bytes, count, thread}]. */
  function weighted() {
    const vals = values();
    const out = [];
    D.groups.forEach((g, i) => {
      const [bytes, n] = vals[i];
      if (bytes === 0 && n === 0) return;
      if (!inProcess(i)) return;
      if (state.unknown && isUnknown(g.s)) return;
      if (state.threads !== "all" && state.threads !== "each") {
        if (g.t !== +state.threads) return;
      }
      out.push({ frames: shownFrames(g.s), bytes, count: n, thread: g.t, allocators: g.a });
    });
    return out;
  }
  // "N allocations" (a sampled capture's are estimates, as its bytes are).
  function blocks(n) {
    return `${count(n)} allocation${n === 1 ? "" : "s"}`;
  }
  function threadName(t) { return t < 0 ? "every thread" : (D.threads[t] || ("thread #" + t)); }

  // ---- the tree ----
  function tree(items) {
    const root = { name: "all", kind: -1, frame: -1, total: 0, own: 0, count: 0, ownCount: 0, children: new Map(), depth: 0, parent: null, id: "" };
    let depth = 0;
    for (const it of items) {
      let node = root;
      root.total += it.bytes; root.count += it.count;
      const path = state.threads === "each" ? [-(it.thread + 2)].concat(it.frames) : it.frames;
      for (const f of path) {
        let child = node.children.get(f);
        if (!child) {
          const name = f < 0 ? "thread " + threadName(-f - 2) : D.frames[f][0];
          child = { name, kind: f < 0 ? -1 : D.frames[f][1], frame: f, total: 0, own: 0, count: 0, ownCount: 0, children: new Map(), depth: node.depth + 1, parent: node, id: node.id + "/" + f };
          node.children.set(f, child);
        }
        child.total += it.bytes; child.count += it.count;
        node = child;
      }
      node.own += it.bytes; node.ownCount += it.count;
      depth = Math.max(depth, node.depth);
    }
    root.maxDepth = depth;
    return root;
  }

  // ---- the flamegraph ----
  const fg = document.getElementById("flamegraph");
  const details = document.getElementById("details");
  const unzoom = document.getElementById("unzoom");
  let current = null;
  function colour(node) {
    let h = 0;
    for (let i = 0; i < node.name.length; i++) h = (h * 31 + node.name.charCodeAt(i)) >>> 0;
    const r = (h % 1000) / 1000;
    switch (node.kind) {
      case K.PYTHON: return `rgb(${205 + Math.round(50 * r)},${90 + Math.round(100 * r)},40)`;
      case K.IMPORT: return "rgb(200,200,200)";
      case K.INTERPRETER: return `rgb(110,${150 + Math.round(60 * r)},${200 + Math.round(40 * r)})`;
      case K.NATIVE: return `rgb(${80 + Math.round(60 * r)},${170 + Math.round(60 * r)},90)`;
      case K.UNKNOWN: return "rgb(170,170,170)";
      case K.OTHER: return "rgb(215,215,215)";
      case K.PROCESS: return "rgb(240,200,90)";
      default: return "rgb(180,160,220)";
    }
  }
  function describe(node, root) {
    const pct = root.total ? (100 * node.total / root.total).toFixed(2) : "0";
    let s = `Frame: ${node.name} (${size(node.total)}, ${exact(node.total)}, ${pct}%)`;
    s += `\nown ${size(node.own)} in ${blocks(node.ownCount)}; ${blocks(node.count)} in all`;
    if (node.frame >= 0) {
      const fr = D.frames[node.frame];
      if (fr[4]) s += `\n${fr[2]}:${fr[3]}: ${fr[4]}`;
      if (fr[1] === K.UNKNOWN) s += "\n" + D.meta.unknown_help;
      if (fr[1] === K.OTHER) s += `\nstacks too small to draw one by one (${count(D.merged)} (stack, thread) groups in all), merged under the callers they share, to keep the page small`;
    }
    return s;
  }
  function drawFlame(root) {
    if (current !== root) details.textContent = "Hover a frame for its bytes and source line; click it to zoom.";
    current = root;
    while (fg.firstChild) fg.removeChild(fg.firstChild);
    const W = Math.max(400, fg.parentNode.clientWidth || 1200);
    const PAD = 10;
    const width = W - 2 * PAD;
    let zoomNode = null;
    const byId = new Map();
    // Walks here and below keep their own stack: a JavaScript call per level gave out near
    // 3,300 levels, and stacks run to 4,096 frames.
    for (const todo = [root]; todo.length;) {
      const n = todo.pop();
      byId.set(n.id, n);
      for (const c of n.children.values()) todo.push(c);
    }
    if (state.zoom && byId.has(state.zoom)) zoomNode = byId.get(state.zoom);
    const focus = zoomNode || root;
    const ancestors = new Set();
    for (let n = focus; n; n = n.parent) ancestors.add(n);
    const minW = 0.3;
    // Layout first: the picture is as tall as the deepest frame drawn.
    const boxes = [];
    let depth = 0;
    for (const todo = [{ node: root, x: PAD, w: width, shown: true }]; todo.length;) {
      const { node, x, w, shown } = todo.pop();
      if (node !== root) {
        const hidden = !shown || w < minW;
        boxes.push({ node, x, w, hidden });
        if (!hidden) depth = Math.max(depth, node.depth);
      }
      const kids = [...node.children.values()].sort((a, b) => b.total - a.total || (a.name < b.name ? -1 : 1));
      const next = [];
      if (ancestors.has(node) && node !== focus) {
        // Above the zoomed frame: its ancestors span the width, the others are hidden.
        for (const c of kids) next.push({ node: c, x: PAD, w: ancestors.has(c) ? width : 0, shown: shown && ancestors.has(c) });
      } else {
        let cx = x;
        for (const c of kids) {
          const cw = node.total ? w * c.total / node.total : 0;
          // Frames too narrow to draw take their subtree with them.
          next.push({ node: c, x: cx, w: cw, shown: shown && cw >= minW });
          cx += cw;
        }
      }
      // Children in their order: the first is taken next.
      for (let i = next.length - 1; i >= 0; i--) todo.push(next[i]);
    }
    const H = Math.max(1, depth) * FRAME_H + 2 * PAD;
    fg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    fg.setAttribute("width", W);
    fg.setAttribute("height", H);
    fg.style.height = H + "px";
    const g = svg("g", { id: "frames" });
    fg.appendChild(g);
    function y(d) {
      return state.inverted ? PAD + (d - 1) * FRAME_H : H - PAD - d * FRAME_H;
    }
    for (const { node, x, w, hidden } of boxes) {
      const grp = svg("g", hidden ? { class: "hide" } : {});
      grp.appendChild(svg("title", {}, `${node.name} (${size(node.total)}, ${exact(node.total)}, ${(100 * node.total / Math.max(1, root.total)).toFixed(2)}%)`));
      grp.appendChild(svg("rect", { x: x.toFixed(2), y: y(node.depth), width: Math.max(0, w).toFixed(2), height: FRAME_H - 1, fill: colour(node), rx: 2 }));
      const chars = Math.floor((w - 6) / 7);
      let label = "";
      if (chars >= 3) label = node.name.length <= chars ? node.name : node.name.slice(0, chars - 2) + "..";
      grp.appendChild(svg("text", { x: (x + 3).toFixed(2), y: y(node.depth) + FRAME_H - 4 }, label));
      grp.addEventListener("mouseover", () => { details.textContent = describe(node, root); });
      grp.addEventListener("click", (e) => { e.stopPropagation(); state.zoom = node.id; render(); });
      g.appendChild(grp);
    }
    if (root.total === 0) {
      g.appendChild(svg("text", { x: PAD, y: PAD + 12 }, "(no memory in this view)"));
    }
    unzoom.classList.toggle("hide", !zoomNode);
    const q = state.filter.toLowerCase();
    if (q) for (const grp of g.children) {
      const t = grp.querySelector("title");
      if (t && t.textContent.toLowerCase().includes(q)) grp.classList.add("match");
    }
  }
  unzoom.addEventListener("click", () => { state.zoom = ""; render(); });

  // ---- the table of locations ----
  const COLUMNS = [
    { key: "location", name: "location", text: true },
    { key: "own", name: "own bytes" },
    { key: "total", name: "total bytes" },
    { key: "count", name: "allocations" },
    { key: "threads", name: "threads", text: true },
    { key: "allocator", name: "allocator", text: true },
    { key: "where", name: "file:line", text: true },
  ];
  function locations(items) {
    const rows = new Map();
    for (const it of items) {
      const seen = new Set();
      const frames = it.frames;
      frames.forEach((f, i) => {
        let r = rows.get(f);
        if (!r) {
          const fr = D.frames[f];
          const where = fr[2] ? (fr[3] ? fr[2] + ":" + fr[3] : fr[2]) : "";
          // The function alone when its file:line has a column of its own.
          const suffix = " at " + where;
          const location = where && fr[0].endsWith(suffix) ? fr[0].slice(0, -suffix.length) : fr[0];
          r = { frame: f, location, own: 0, total: 0, count: 0, threadSet: new Set(), mask: 0, where };
          rows.set(f, r);
        }
        if (!seen.has(f)) { r.total += it.bytes; seen.add(f); }
        if (i === frames.length - 1) { r.own += it.bytes; r.count += it.count; r.threadSet.add(it.thread); r.mask |= it.allocators; }
      });
    }
    const out = [...rows.values()].filter((r) => r.own > 0 || r.count > 0);
    for (const r of out) {
      const ts = [...r.threadSet];
      r.threads = ts.length === 1 ? threadName(ts[0]) : ts.length + " threads";
      r.allocator = D.meta.allocators.filter((_, i) => r.mask & (1 << i)).join(", ");
    }
    return out;
  }
  function drawTable(items) {
    const table = document.getElementById("locations");
    const head = table.tHead.rows[0];
    while (head.firstChild) head.removeChild(head.firstChild);
    for (const c of COLUMNS) {
      const th = el("th", { "data-key": c.key }, c.name);
      if (state.sort === c.key) th.className = "sorted" + (state.asc ? " asc" : "");
      th.addEventListener("click", () => {
        if (state.sort === c.key) state.asc = !state.asc; else { state.sort = c.key; state.asc = !!c.text; }
        render();
      });
      head.appendChild(th);
    }
    let rows = locations(items);
    const q = state.filter.toLowerCase();
    if (q) rows = rows.filter((r) => (D.frames[r.frame][0] + " " + r.threads).toLowerCase().includes(q));
    const col = COLUMNS.find((c) => c.key === state.sort) || COLUMNS[1];
    rows.sort((a, b) => {
      const x = a[col.key], y = b[col.key];
      const d = col.text ? (x < y ? -1 : x > y ? 1 : 0) : x - y;
      return (state.asc ? d : -d) || b.own - a.own || (a.location < b.location ? -1 : 1);
    });
    const body = table.tBodies[0];
    while (body.firstChild) body.removeChild(body.firstChild);
    const LIMIT = 500;
    for (const r of rows.slice(0, LIMIT)) {
      const tr = el("tr");
      const loc = el("td", { class: "loc" }, r.location);
      const fr = D.frames[r.frame];
      if (fr[1] === K.UNKNOWN) loc.title = D.meta.unknown_help;
      else if (fr[4]) loc.title = fr[4];
      tr.appendChild(loc);
      for (const k of ["own", "total"]) { const td = el("td", { class: "n" }); td.appendChild(sized(r[k])); tr.appendChild(td); }
      tr.appendChild(el("td", { class: "n" }, count(r.count)));
      tr.appendChild(el("td", { class: "t" }, r.threads));
      tr.appendChild(el("td", { class: "a" }, r.allocator));
      tr.appendChild(el("td", { class: "loc" }, r.where));
      body.appendChild(tr);
    }
    document.getElementById("rows").textContent =
      rows.length > LIMIT ? `${LIMIT} of ${count(rows.length)} locations` : `${count(rows.length)} location${rows.length === 1 ? "" : "s"}`;
  }

  // ---- the chart ----
  const chart = document.getElementById("chart");
  const CW = 1000, CH = 260, L = 70, R = 10, T = 12, B = 30;
  const tMax = Math.max(D.meta.duration_s, D.buckets.t0_s + NB * D.buckets.width_s, 1e-6);
  const dataMax = Math.max(1, ...D.buckets.hwm, ...D.heap.map((p) => p[1]), ...D.rss.map((p) => p[1]));
  // The cgroup memory limit is drawn to scale when it is within 4 times the highest value
  // (else the curves would be flattened under it): then only named at the top.
  const LIMIT = D.meta.memory_limit || 0;
  const limitOnScale = LIMIT > 0 && LIMIT <= 4 * dataMax;
  const yMax = Math.max(dataMax, limitOnScale ? LIMIT : 0) * 1.08;
  const xOf = (t) => L + (CW - L - R) * t / tMax;
  const yOf = (v) => CH - B - (CH - B - T) * v / yMax;
  const tOf = (x) => (x - L) / (CW - L - R) * tMax;
  function bucketAt(x) {
    const b = Math.floor((tOf(x) - D.buckets.t0_s) / D.buckets.width_s);
    return Math.max(D.buckets.first, Math.min(NB - 1, b));
  }
  const bStart = (b) => D.buckets.t0_s + b * D.buckets.width_s;
  /** The largest locations' series (live at each bucket's high-water mark), for the threads
   * shown: [{name, values}], the largest first; cached per thread choice. */
  const PALETTE = ["#1f77b4", "#9467bd", "#2ca02c", "#8c564b", "#e377c2", "#17becf"];
  const seriesCache = new Map();
  function topSeries() {
    if (seriesCache.has(state.threads)) return seriesCache.get(state.threads);
    const byName = new Map();
    D.groups.forEach((g) => {
      if (state.threads !== "all" && state.threads !== "each" && g.t !== +state.threads) return;
      const stack = D.stacks[g.s];
      const name = D.frames[stack[stack.length - 1]][0];
      let diff = byName.get(name);
      if (!diff) { diff = new Float64Array(NB + 1); byName.set(name, diff); }
      for (const h of g.live) {
        let prev = 0;
        for (let i = 1; i < h.length; i += 3) { diff[h[i]] += h[i + 1] - prev; prev = h[i + 1]; }
      }
    });
    const all = [];
    for (const [name, diff] of byName) {
      const values = new Array(NB);
      let v = 0, top = 0;
      for (let b = 0; b < NB; b++) { v += diff[b]; values[b] = Math.max(0, v); top = Math.max(top, values[b]); }
      if (top > 0) all.push({ name, values, top });
    }
    all.sort((a, b) => b.top - a.top || (a.name < b.name ? -1 : 1));
    const out = all.slice(0, PALETTE.length);
    seriesCache.set(state.threads, out);
    return out;
  }
  function drawChart() {
    while (chart.firstChild) chart.removeChild(chart.firstChild);
    chart.setAttribute("viewBox", `0 0 ${CW} ${CH}`);
    if (D.buckets.first > 0) {
      chart.appendChild(svg("rect", { class: "startup", x: xOf(0), y: T, width: Math.max(0, xOf(bStart(D.buckets.first)) - xOf(0)), height: CH - B - T }));
    }
    D.buckets.hwm.forEach((v, b) => {
      if (b < D.buckets.first) return;
      const x0 = xOf(bStart(b)), x1 = xOf(bStart(b + 1));
      const r = svg("rect", { class: "bar", x: x0, y: yOf(v), width: Math.max(0.5, x1 - x0 - 0.3), height: Math.max(0, yOf(0) - yOf(v)) });
      r.appendChild(svg("title", {}, `${secs(bStart(b))} – ${secs(bStart(b + 1))}: high-water mark ${size(v)} (${exact(v)}) at ${secs(D.buckets.at_s[b])}`));
      chart.appendChild(r);
    });
    // The largest locations, stacked from the bottom; the rest of each bar is everything else.
    const tops = D.family ? familySeries() : topSeries();
    const base = new Array(NB).fill(0);
    tops.forEach((sr, k) => {
      let d = "";
      for (let b = D.buckets.first; b < NB; b++) {
        const x0 = xOf(bStart(b)), x1 = xOf(bStart(b + 1));
        const y0 = yOf(base[b]), y1 = yOf(base[b] + sr.values[b]);
        if (sr.values[b] > 0) d += `M${x0.toFixed(1)} ${y0.toFixed(1)}V${y1.toFixed(1)}H${x1.toFixed(1)}V${y0.toFixed(1)}Z`;
        base[b] += sr.values[b];
      }
      const path = svg("path", { class: "stack", d, fill: sr.colour || PALETTE[k], "fill-opacity": 0.55 });
      path.appendChild(svg("title", {}, `${sr.name}: up to ${size(sr.top)} (${exact(sr.top)})`));
      chart.appendChild(path);
    });
    const legend = document.getElementById("legend");
    while (legend.firstChild) legend.removeChild(legend.firstChild);
    tops.forEach((sr, k) => {
      const item = el("span", { class: "key", title: `up to ${size(sr.top)} (${exact(sr.top)})` });
      item.appendChild(el("span", { class: "swatch", style: `background:${sr.colour || PALETTE[k]}` }));
      item.appendChild(document.createTextNode(sr.name));
      legend.appendChild(item);
    });
    const line = (pts, cls) => {
      if (!pts.length) return;
      const d = pts.map((p, i) => (i ? "L" : "M") + xOf(p[0]).toFixed(1) + " " + yOf(p[1]).toFixed(1)).join("");
      chart.appendChild(svg("path", { class: cls, d }));
    };
    line(D.heap, "curve");
    line(D.rss, "rss");
    if (LIMIT > 0) {
      const label = `cgroup memory limit ${size(LIMIT)}` + (limitOnScale ? "" : " (above the chart's scale)");
      if (limitOnScale) {
        const l = svg("line", { class: "limit", x1: L, y1: yOf(LIMIT), x2: CW - R, y2: yOf(LIMIT) });
        l.appendChild(svg("title", {}, `${label} (${exact(LIMIT)})`));
        chart.appendChild(l);
      }
      chart.appendChild(svg("text", { class: "limit", x: CW - R - 4, y: limitOnScale ? yOf(LIMIT) - 4 : T + 10, "text-anchor": "end" }, label));
    }
    chart.appendChild(svg("line", { class: "axis", x1: L, y1: yOf(0), x2: CW - R, y2: yOf(0) }));
    chart.appendChild(svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: yOf(0) }));
    for (let i = 0; i <= 4; i++) {
      const v = yMax / 1.08 * i / 4;
      chart.appendChild(svg("text", { x: L - 6, y: yOf(v) + 4, "text-anchor": "end" }, size(Math.round(v))));
      const t = tMax * i / 4;
      chart.appendChild(svg("text", { x: xOf(t), y: CH - B + 16, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" }, secs(t)));
    }
    const peak = svg("circle", { class: "peak", cx: xOf(D.meta.peak_at_s), cy: yOf(D.meta.peak), r: 5 });
    peak.appendChild(svg("title", {}, `peak ${size(D.meta.peak)} (${exact(D.meta.peak)}) at ${secs(D.meta.peak_at_s)}`));
    chart.appendChild(peak);
    if (state.view === "range") {
      const x0 = xOf(bStart(state.from)), x1 = xOf(bStart(state.to + 1));
      chart.appendChild(svg("rect", { class: "brush", x: x0, y: T, width: Math.max(1, x1 - x0), height: CH - B - T }));
      const top = rangeTop(state.from, state.to);
      chart.appendChild(svg("circle", { class: "hwm", cx: xOf(D.buckets.at_s[top]), cy: yOf(D.buckets.hwm[top]), r: 4 }));
    }
    if (state.view === "moment") {
      const x = xOf(D.buckets.at_s[state.at]);
      chart.appendChild(svg("line", { class: "moment", x1: x, y1: T, x2: x, y2: yOf(0) }));
      chart.appendChild(svg("circle", { class: "hwm", cx: x, cy: yOf(D.buckets.hwm[state.at]), r: 4 }));
    }
    if (drag) {
      const x0 = Math.min(drag.x0, drag.x1), x1 = Math.max(drag.x0, drag.x1);
      chart.appendChild(svg("rect", { class: "brush", x: x0, y: T, width: Math.max(1, x1 - x0), height: CH - B - T }));
    }
  }
  let drag = null;
  function chartX(e) {
    const r = chart.getBoundingClientRect();
    return (e.clientX - r.left) * CW / r.width;
  }
  chart.addEventListener("mousedown", (e) => { drag = { x0: chartX(e), x1: chartX(e) }; e.preventDefault(); });
  window.addEventListener("mousemove", (e) => { if (drag) { drag.x1 = chartX(e); drawChart(); } });
  window.addEventListener("mouseup", (e) => {
    if (!drag) return;
    drag.x1 = chartX(e);
    const d = drag; drag = null;
    state.zoom = "";
    if (Math.abs(d.x1 - d.x0) < 4) {
      state.view = "moment"; state.at = bucketAt(d.x0);
    } else {
      const a = bucketAt(Math.min(d.x0, d.x1)), b = bucketAt(Math.max(d.x0, d.x1));
      state.view = "range"; state.from = a; state.to = b;
    }
    render();
  });

  // ---- a family's page (memtrace run --follow-fork): D.family ----
  /** Whether group i belongs to the process shown. */
  function inProcess(i) {
    return !D.family || state.process === "all" || D.family.group_process[i] === +state.process;
  }
  function familyFromFragment(p) {
    const v = p.get("process");
    if (v === "all" || (v !== null && /^\d+$/.test(v) && +v < D.family.processes.length)) state.process = v;
  }
  /** A process's colour: hues spread around the wheel. */
  function familyColour(k) { return `hsl(${(k * 137.5) % 360},60%,55%)`; }
  /** Each process's heap at each bucket's moment, for the chart's stack: [{name, values, top,
   * colour}], the processes shown, in the family's order. */
  function familySeries() {
    const out = [];
    D.family.heaps.forEach((values, k) => {
      if (state.process !== "all" && +state.process !== k) return;
      const top = Math.max(0, ...values);
      if (top > 0) out.push({ name: D.family.processes[k], values, top, colour: familyColour(k) });
    });
    return out;
  }
  function familySummary() {
    const facts = document.getElementById("facts");
    const add = (k, v) => {
      const d = el("div");
      d.appendChild(el("dt", {}, k));
      d.appendChild(el("dd", {}, v));
      facts.appendChild(d);
    };
    add("Processes", count(D.family.processes.length));
    const shares = D.family.peak_by_process.map(([p, b]) => `${D.family.processes[p].split(":")[0]} ${size(b)}`);
    add("At the combined peak", shares.length ? shares.join(", ") : "nothing live");
  }
  function familyControls() {
    const set = el("fieldset", { id: "process-filter" });
    set.appendChild(el("legend", {}, "processes"));
    const sel = el("select", { id: "process" });
    sel.appendChild(el("option", { value: "all" }, "all processes"));
    D.family.processes.forEach((name, k) => sel.appendChild(el("option", { value: String(k) }, name)));
    sel.addEventListener("change", () => { state.process = sel.value; state.zoom = ""; render(); });
    set.appendChild(sel);
    const bar = document.getElementById("controls");
    bar.insertBefore(set, bar.firstChild);
    const note = document.querySelector("#timeline .note");
    if (note && note.lastChild) {
      note.lastChild.textContent = " Bars: each bucket's highest sum of the processes' heaps, each process's share at that moment stacked (the legend); line: the sum of the heaps; red dot: the combined peak.";
    }
  }
  function familySync() { document.getElementById("process").value = state.process; }

  // ---- the summary and the controls ----
  function summary() {
    const m = D.meta;
    const facts = document.getElementById("facts");
    const add = (k, v, title) => {
      const d = el("div");
      d.appendChild(el("dt", {}, k));
      const dd = el("dd", title ? { title } : {}, v);
      d.appendChild(dd);
      facts.appendChild(d);
    };
    add(D.family ? "Combined peak" : "Peak", `${size(m.peak)} at ${secs(m.peak_at_s)}`, exact(m.peak));
    add("Total allocated", size(m.total_bytes), exact(m.total_bytes));
    add(m.exit_snapshot ? "Live at exit" : "Live at the end", size(m.leaked), exact(m.leaked));
    add("Allocations", count(m.total_allocations));
    add("Duration", secs(m.duration_s));
    add("Command", m.command);
    add("Python", m.python || "none seen");
    add("Mode", m.mode);
    for (const w of m.warnings || []) add("Note", w);
    if (m.memory_limit) add("Memory limit", `${size(m.memory_limit)} (cgroup v2 memory.max)`, exact(m.memory_limit));
  }
  const VIEWS = [["peak", "Peak"], ["leaks", "Leaks"], ["temporary", "Temporary"], ["all", "All allocations"]];
  function controls() {
    const views = document.getElementById("views");
    for (const [v, name] of VIEWS) {
      const b = el("button", { type: "button", "data-view": v }, name);
      b.addEventListener("click", () => { state.view = v; state.zoom = ""; render(); });
      views.appendChild(b);
    }
    const sel = document.getElementById("threads");
    sel.appendChild(el("option", { value: "all" }, "all threads, merged"));
    sel.appendChild(el("option", { value: "each" }, "each thread apart"));
    D.threads.forEach((t, i) => sel.appendChild(el("option", { value: String(i) }, t)));
    sel.addEventListener("change", () => { state.threads = sel.value; state.zoom = ""; render(); });
    const box = (id, key) => {
      const c = document.getElementById(id);
      c.addEventListener("change", () => { state[key] = c.checked; state.zoom = ""; render(); });
    };
    box("inverted", "inverted"); box("imports", "imports"); box("interp", "interp"); box("unknown", "unknown");
    const f = document.getElementById("filter");
    f.addEventListener("input", () => { state.filter = f.value; render(); });
    document.getElementById("clear").addEventListener("click", () => { state.view = D.initial.view; state.zoom = ""; render(); });
  }
  function syncControls() {
    if (D.family) familySync();
    for (const b of document.querySelectorAll("#views button")) b.classList.toggle("on", b.dataset.view === state.view);
    document.getElementById("threads").value = state.threads;
    document.getElementById("inverted").checked = state.inverted;
    document.getElementById("imports").checked = state.imports;
    document.getElementById("interp").checked = state.interp;
    document.getElementById("unknown").checked = state.unknown;
    const f = document.getElementById("filter");
    if (f.value !== state.filter) f.value = state.filter;
  }
  function selectionText(root) {
    const s = document.getElementById("what");
    const w = D.buckets.width_s;
    let t;
    switch (state.view) {
      case "peak": t = `Live at the ${D.family ? "combined " : ""}peak (${secs(D.meta.peak_at_s)})`; break;
      case "leaks": t = D.meta.exit_snapshot ? "Live at exit" : "Live at the end of the capture (no exit snapshot)"; break;
      case "temporary": t = `Temporary allocations (freed before ${D.meta.temporary_threshold} more allocation${D.meta.temporary_threshold === 1 ? "" : "s"} of their thread)`; break;
      case "all": t = "Every allocation of the run"; break;
      case "moment": t = `Live at ${secs(D.buckets.at_s[state.at])} (the high-water mark of ${secs(bStart(state.at))} – ${secs(bStart(state.at + 1))})`; break;
      default: {
        const top = rangeTop(state.from, state.to);
        t = `Allocated from ${secs(bStart(state.from))} to ${secs(bStart(state.to + 1))} and live at the range's high-water mark (${secs(D.buckets.at_s[top])})`;
      }
    }
    // An aggregated capture kept sums, not allocations: what these views need was not recorded.
    const unrecorded = D.meta.aggregated && ["temporary", "moment", "range"].includes(state.view);
    s.textContent = unrecorded
      ? `${t}: not recorded in an aggregated capture (memtrace run --aggregate keeps sums per stack and thread); record the run without --aggregate`
      : `${t}: ${size(root.total)} in ${blocks(root.count)}`;
    s.title = exact(root.total);
    document.getElementById("clear").style.display = state.view === "moment" || state.view === "range" ? "" : "none";
    // An aggregated capture's chart is its snapshots' series: no range or moment to pick, and
    // a fall is dated by the window it came in (frees carry no time there).
    document.getElementById("resolution").textContent = D.meta.aggregated
      ? `Memory over time from the aggregated capture's snapshots: a fall shows at the last timed event of its window (up to 2 s early); ranges and moments are not recorded.`
      : `Drag over the chart to pick a time range, click it for one moment (${NB} buckets of ${secs(w)}).`;
  }

  function render() {
    syncControls();
    const items = weighted();
    const root = tree(items);
    selectionText(root);
    drawChart();
    drawFlame(root);
    drawTable(items);
    saveFragment();
  }

  // ---- by type: each type live at the peak / at exit expands to the lines of its objects ----
  function typeGroup(g) {
    const d = el("details", { class: "type" });
    const head = el("summary");
    head.appendChild(el("span", { class: "tname" }, g.type));
    head.appendChild(document.createTextNode(" \u2014 " + count(g.objects) + " objects, "));
    head.appendChild(sized(g.bytes));
    d.appendChild(head);
    const table = el("table", { class: "type-lines" });
    const hr = el("tr");
    for (const c of ["line", "bytes", "allocations"]) hr.appendChild(el("th", {}, c));
    table.appendChild(el("thead")).appendChild(hr);
    const body = el("tbody");
    for (const l of g.lines) {
      const tr = el("tr");
      tr.appendChild(el("td", { class: "loc" }, l.location));
      const b = el("td", { class: "n" });
      b.appendChild(sized(l.bytes));
      tr.appendChild(b);
      tr.appendChild(el("td", { class: "n" }, count(l.allocations)));
      body.appendChild(tr);
    }
    table.appendChild(body);
    d.appendChild(table);
    return d;
  }
  function drawTypes() {
    const T = D.types;
    if (!T) return;
    document.getElementById("by-type").classList.remove("hide");
    document.getElementById("types-covered").textContent = "Covered: " + T.covered + ".";
    const box = document.getElementById("types-moments");
    for (const [key, title] of [["peak", "Live at the peak"], ["exit", "Live at exit"]]) {
      if (!T[key]) continue;
      const part = el("div", { class: "types-moment", id: "types-" + key });
      part.appendChild(el("h3", {}, title));
      for (const g of T[key]) part.appendChild(typeGroup(g));
      box.appendChild(part);
    }
  }

  summary();
  controls();
  drawTypes();
  if (D.family) { familySummary(); familyControls(); }
  fromFragment(location.hash);
  window.addEventListener("hashchange", () => { if (!writing) { fromFragment(location.hash); render(); } });
  window.addEventListener("resize", () => { if (current) drawFlame(current); });
  if (D.merged > 0) {
    document.getElementById("merged").textContent =
      `${count(D.merged)} small (stack, thread) groups are merged into "other (small stacks)" frames, each under the callers its stacks share, to keep the page small.`;
  }
  render();
})();
