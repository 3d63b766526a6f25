// The dashboard's page: sweeps, a sweep, a trial, the agents. Every string that comes from a user
// (names, parameter values, metric names, log lines) is written as text, never as markup, and is
// escaped before plotly draws it (plotly reads a few tags in labels).
"use strict";

const main = document.getElementById("main");
const state = { view: null, sweep: null, timer: null, events: null, session: null };

// ---------------------------------------------------------------- helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// A string as plotly shows it literally.
function pl(s) {
  return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function fmt(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
    return String(Math.round(v * 1e4) / 1e4);
  }
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function when(ms) {
  if (!ms) return "–";
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function ago(ms) {
  if (!ms) return "–";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 120) return s + " s ago";
  if (s < 7200) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

async function api(path, options) {
  const res = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
  if (res.status === 401 || res.status === 403) {
    window.location.href = "/ui/login";
    throw new Error("not signed in");
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || res.status + " " + res.statusText);
  return body;
}

function act(path) {
  return api(path, { method: "POST", headers: { "x-sweep-action": "1" } });
}

function stateChip(s) {
  return el("span", { class: "state " + s }, s);
}

function showError(where, e) {
  where.replaceChildren(el("p", { class: "error" }, String(e.message || e)));
}

function hashParams() {
  const [, query] = location.hash.split("?");
  return new URLSearchParams(query || "");
}

function setHashParams(params) {
  const [path] = location.hash.split("?");
  const q = params.toString();
  history.replaceState(null, "", (path || "#/") + (q ? "?" + q : ""));
}

// A refresh asked for many times in a burst runs once.
function debounce(fn, ms) {
  let t = null;
  return () => {
    clearTimeout(t);
    t = setTimeout(fn, ms);
  };
}

function chart(node, traces, layout) {
  if (!window.Plotly) return;
  const base = { margin: { l: 60, r: 20, t: 30, b: 45 }, font: { size: 12 }, paper_bgcolor: "#fff", plot_bgcolor: "#fff" };
  window.Plotly.react(node, traces, Object.assign(base, layout), { displaylogo: false, responsive: true });
}

// Parallel coordinates drawn as plain lines (SVG), so they show without WebGL: in a browser on a
// remote desktop, a VM or a headless test as well. One axis per parameter, the metric last; each
// trial is one line, coloured by its metric in six bands, the best band drawn on top.
const BANDS = ["#fde725", "#7ad151", "#22a884", "#2a788e", "#414487", "#440154"];

function drawParallel(node, d) {
  const dims = d.dimensions;
  const n = dims.length;
  const scale = dims.map((dim) => {
    const finite = dim.values.filter((v) => v !== null && Number.isFinite(v));
    const lo = Math.min(...finite), hi = Math.max(...finite);
    return { lo, hi, at: (v) => (v === null || !Number.isFinite(v) ? null : hi > lo ? (v - lo) / (hi - lo) : 0.5) };
  });
  const metric = dims[n - 1].values;
  const rows = metric.map((_, i) => i);
  // The API sends the best trials first: bands of equal size from the best down.
  const band = (i) => Math.min(BANDS.length - 1, Math.floor((i * BANDS.length) / Math.max(1, rows.length)));
  const traces = BANDS.map((colour, b) => ({ x: [], y: [], mode: "lines", type: "scatter", hoverinfo: "skip", showlegend: false,
    line: { color: colour, width: 1 }, opacity: 0.55 }));
  for (const i of rows) {
    const t = traces[band(i)];
    for (let k = 0; k < n; k++) { t.x.push(k); t.y.push(scale[k].at(dims[k].values[i])); }
    t.x.push(null); t.y.push(null);
  }
  traces.reverse();
  const shapes = dims.map((_, k) => ({ type: "line", x0: k, x1: k, y0: 0, y1: 1, line: { color: "#555", width: 1 } }));
  const notes = [];
  dims.forEach((dim, k) => {
    notes.push({ x: k, y: 1.06, text: pl(dim.label), showarrow: false, font: { size: 11 }, xanchor: "center" });
    const ticks = dim.ticktext ? dim.tickvals.map((v, j) => [v, dim.ticktext[j]]) :
      [0, 0.5, 1].map((f) => { const v = scale[k].lo + f * (scale[k].hi - scale[k].lo); return [v, fmt(v)]; });
    for (const [v, label] of ticks) {
      const y = scale[k].at(v);
      if (y !== null) notes.push({ x: k, y, text: pl(label), showarrow: false, xanchor: "right", xshift: -4, font: { size: 9, color: "#444" } });
    }
  });
  node.dataset.lines = rows.length;
  chart(node, traces, {
    xaxis: { visible: false, range: [-0.45, n - 1 + 0.15] }, yaxis: { visible: false, range: [-0.05, 1.12] },
    shapes, annotations: notes, margin: { l: 50, r: 10, t: 30, b: 10 },
    title: { text: pl(d.trials + (d.trials < d.of ? " best of " + d.of : "") + " trials, coloured by " + d.metric + " (yellow: best)"), font: { size: 12 } },
  });
}

// ---------------------------------------------------------------- live updates

function listen() {
  if (state.events || !window.EventSource) return;
  const live = document.getElementById("live");
  const es = new EventSource("/api/events");
  state.events = es;
  es.addEventListener("open", () => live.classList.add("on"));
  es.addEventListener("error", () => live.classList.remove("on"));
  es.addEventListener("sweep", (ev) => {
    const change = JSON.parse(ev.data);
    if (state.onChange) state.onChange(change);
  });
}

// ---------------------------------------------------------------- sweeps

async function sweepsPage() {
  main.replaceChildren(el("h1", {}, "Sweeps"), el("div", { id: "sweeps" }, el("p", { class: "muted" }, "Loading…")));
  const box = document.getElementById("sweeps");
  const draw = async () => {
    try {
      const { sweeps } = await api("/api/sweeps");
      if (!sweeps.length) {
        box.replaceChildren(el("p", { class: "muted" }, "No sweeps yet. Submit one with `sweep submit FILE`."));
        return;
      }
      const rows = sweeps.map((s) =>
        el("tr", { class: "clickable", onclick: () => (location.hash = "#/sweep/" + encodeURIComponent(s.name)) },
          el("td", {}, el("a", { href: "#/sweep/" + encodeURIComponent(s.name) }, s.name)),
          el("td", {}, stateChip(s.state)),
          el("td", {}, el("span", { class: "progress", title: s.finished + " of " + s.total + " finished" },
            el("div", { style: "width:" + (s.total ? (100 * s.finished) / s.total : 0).toFixed(1) + "%" })),
            " ", s.finished + " / " + s.total),
          el("td", {}, Object.entries(s.counts).map(([k, v]) => k + " " + v).join(" · ")),
          el("td", { class: "num" }, s.gpu_hours === null ? "–" : fmt(s.gpu_hours)),
          el("td", { class: "num" }, fmt(s.trial_hours)),
          el("td", {}, when(s.started_at_ms || s.created_at_ms)),
          el("td", {}, s.owner || "")));
      box.replaceChildren(el("div", { class: "table-wrap" }, el("table", {},
        el("thead", {}, el("tr", {}, ["Sweep", "State", "Progress", "Trials", "GPU-hours", "Trial-hours", "Started", "Owner"].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows))));
    } catch (e) {
      showError(box, e);
    }
  };
  state.onChange = debounce(draw, 500);
  await draw();
}

// ---------------------------------------------------------------- one sweep

const ALL_STATES = ["pending", "leased", "running", "succeeded", "failed", "cancelled", "stopped", "stopped_early", "paused"];

async function sweepPage(name) {
  const p = hashParams();
  const view = {
    name,
    metric: p.get("metric") || "",
    goal: p.get("goal") || "",
    top: Number(p.get("top") || 10),
    highlight: p.get("trial") || "",
    sort: p.get("sort") || "",
    desc: p.get("desc") === "1",
    where: p.get("where") || "",
    find: "",
    states: p.get("states") ? p.get("states").split(",") : [],
    offset: 0,
    limit: 50,
  };
  const base = "/api/sweeps/" + encodeURIComponent(name);
  let info;
  try {
    info = await api(base);
  } catch (e) {
    showError(main, e);
    return;
  }
  if (!view.metric) view.metric = info.default_metric || "";

  const save = () => {
    const q = new URLSearchParams();
    if (view.metric) q.set("metric", view.metric);
    if (view.goal) q.set("goal", view.goal);
    if (view.top !== 10) q.set("top", view.top);
    if (view.highlight) q.set("trial", view.highlight);
    if (view.sort) q.set("sort", view.sort);
    if (view.desc) q.set("desc", "1");
    if (view.where) q.set("where", view.where);
    if (view.states.length) q.set("states", view.states.join(","));
    setHashParams(q);
  };

  const head = el("div", { id: "head" });
  const metricSelect = el("select", { id: "metric", onchange: (e) => { view.metric = e.target.value; save(); refreshCharts(); refreshTable(); } },
    info.metrics.map((m) => el("option", { value: m, selected: m === view.metric }, m)));
  const goalSelect = el("select", { id: "goal", onchange: (e) => { view.goal = e.target.value; save(); refreshCharts(); } },
    el("option", { value: "" }, "auto"), el("option", { value: "max", selected: view.goal === "max" }, "higher is better"),
    el("option", { value: "min", selected: view.goal === "min" }, "lower is better"));
  const topInput = el("input", { id: "top", type: "number", min: 1, max: 50, value: view.top, style: "width:4.5rem",
    onchange: (e) => { view.top = Math.max(1, Math.min(50, Number(e.target.value) || 10)); save(); refreshCurves(); } });
  const jump = el("input", { id: "jump", type: "text", placeholder: "trial id", style: "width:12rem" });
  const jumpForm = el("form", { onsubmit: (e) => { e.preventDefault(); const id = jump.value.trim(); if (id) location.hash = "#/sweep/" + encodeURIComponent(name) + "/trial/" + encodeURIComponent(id); } },
    el("label", { for: "jump" }, "Go to trial "), jump);

  const curves = el("div", { id: "curves", class: "chart" });
  const parallel = el("div", { id: "parallel", class: "chart" });
  const importance = el("div", { id: "importance", class: "chart", style: "height:300px" });
  const tableBox = el("div", { id: "trials" });
  const whereInput = el("input", { id: "where", class: "wide", type: "text", value: view.where,
    placeholder: "filter: lr < 0.01, optimizer = adam, test_acc >= 0.9" });
  const findInput = el("input", { id: "find", type: "text", placeholder: "trial id starts with", style: "width:12rem" });
  const stateBoxes = el("span", { class: "chips" }, ALL_STATES.map((s) =>
    el("label", {}, el("input", { type: "checkbox", value: s, checked: !view.states.length || view.states.includes(s),
      onchange: () => {
        const on = [...stateBoxes.querySelectorAll("input:checked")].map((i) => i.value);
        view.states = on.length === ALL_STATES.length ? [] : on;
        view.offset = 0; save(); refreshTable();
      } }), " " + s)));
  const filterForm = el("form", { id: "filter", onsubmit: (e) => { e.preventDefault(); view.where = whereInput.value.trim(); view.find = findInput.value.trim(); view.offset = 0; save(); refreshTable(); } },
    whereInput, " ", findInput, " ", el("button", { type: "submit" }, "Apply"));
  const decisionsBox = el("div", { id: "decisions" });
  const figures = el("div", { id: "figures", class: "figures" });

  main.replaceChildren(
    head,
    el("div", { class: "controls" }, el("label", { for: "metric" }, "Metric"), metricSelect, goalSelect,
      el("label", { for: "top" }, "Top"), topInput, jumpForm),
    el("div", { class: "grid" },
      el("div", { class: "card" }, el("h2", {}, "Learning curves"), curves),
      el("div", { class: "card" }, el("h2", {}, "Parallel coordinates"), parallel)),
    el("div", { class: "card" }, el("h2", {}, "Trials"), el("div", { class: "controls" }, filterForm), el("div", { class: "controls" }, stateBoxes), tableBox),
    el("div", { class: "grid" },
      el("div", { class: "card" }, el("h2", {}, "Parameter importance"), importance),
      el("div", { class: "card" }, el("h2", {}, "Early-stopping decisions"), decisionsBox)),
    el("div", { class: "card" }, el("h2", {}, "Figures"), figures));

  const drawHead = (s) => {
    const counts = Object.entries(s.counts).map(([k, v]) => k + " " + v).join(" · ");
    const finished = ["succeeded", "failed", "cancelled", "stopped", "stopped_early"].reduce((n, k) => n + (s.counts[k] || 0), 0);
    head.replaceChildren(...[
      el("h1", {}, s.name, " ", stateChip(s.state)),
      el("p", {}, el("span", { class: "progress" }, el("div", { style: "width:" + (s.total ? (100 * finished) / s.total : 0).toFixed(1) + "%" })),
        " ", finished + " of " + s.total + " finished · " + counts,
        s.owner ? " · submitted by " + s.owner : "", " · created " + when(s.created_at_ms)),
      s.waiting ? el("p", { class: "error" }, s.waiting) : null,
      s.pause_reason ? el("p", { class: "error" }, "paused: " + s.pause_reason + (s.pause_error ? "\n" + s.pause_error : "")) : null,
      s.rungs && s.rungs.length ? el("p", { class: "muted" }, "rungs: " + s.rungs.map((r) => "epoch " + r.epoch + ": " + r.judged + " judged, " + r.went_on + " went on, " + r.stopped + " stopped").join(" · ")) : null,
      s.live && s.state !== "cancelled" && s.state !== "done" ? el("button", { id: "cancel", class: "danger", onclick: async (e) => {
        if (!confirm("Cancel every unfinished trial of " + s.name + "?")) return;
        e.target.disabled = true;
        try { const r = await act(base + "/cancel"); e.target.replaceWith(el("span", { class: "muted" }, r.cancelled + " trials cancelled")); }
        catch (err) { e.target.disabled = false; alert(err.message); }
      } }, "Cancel sweep") : null].filter(Boolean));
  };
  drawHead(info);

  const refreshCurves = async () => {
    try {
      const q = new URLSearchParams({ metric: view.metric, top: view.top });
      if (view.goal) q.set("goal", view.goal);
      if (view.highlight) q.set("highlight", view.highlight);
      const c = await api(base + "/curves?" + q);
      const traces = c.trials.map((t) => ({
        x: t.points.map((p) => p[0]), y: t.points.map((p) => p[1]), mode: "lines+markers", type: "scatter",
        name: pl(t.trial_id.slice(0, 10) + " " + t.label), customdata: t.trial_id,
        line: { width: t.highlighted ? 4 : 1.5 }, marker: { size: t.highlighted ? 7 : 4 },
      }));
      curves.dataset.points = c.trials.map((t) => t.trial_id + ":" + t.points.length).join(",");
      chart(curves, traces, { xaxis: { title: { text: "epoch" } }, yaxis: { title: { text: pl(c.metric || "") } },
        legend: { font: { size: 10 } }, title: { text: pl("top " + view.top + " by " + (c.metric || "–") + " (" + c.goal + ")"), font: { size: 12 } } });
      if (!curves.dataset.bound && curves.on) {
        curves.dataset.bound = "1";
        curves.on("plotly_click", (ev) => { const id = ev.points[0].data.customdata; if (id) location.hash = "#/sweep/" + encodeURIComponent(name) + "/trial/" + encodeURIComponent(id); });
      }
    } catch (e) { showError(curves, e); }
  };

  const refreshParallel = async () => {
    try {
      const q = new URLSearchParams({ metric: view.metric });
      if (view.goal) q.set("goal", view.goal);
      const d = await api(base + "/parallel?" + q);
      if (!d.dimensions.length || d.trials === 0) { parallel.replaceChildren(el("p", { class: "muted" }, "No trial has reported " + (d.metric || "a metric") + " yet.")); return; }
      drawParallel(parallel, d);
    } catch (e) { showError(parallel, e); }
  };

  const refreshImportance = async () => {
    try {
      const d = await api(base + "/importance?" + new URLSearchParams({ metric: view.metric }));
      if (!d.params.length) { importance.replaceChildren(el("p", { class: "muted" }, "No parameter varies, or too few trials have finished.")); return; }
      const ps = d.params.slice().reverse();
      chart(importance, [{ type: "bar", orientation: "h", x: ps.map((p) => p.importance), y: ps.map((p) => pl(p.param)) }],
        { xaxis: { title: { text: pl("share of the variance of " + d.metric + " (" + d.method + ")") }, range: [0, 1] }, margin: { l: 140, r: 20, t: 10, b: 45 } });
    } catch (e) { showError(importance, e); }
  };

  const refreshDecisions = async () => {
    try {
      const d = await api(base + "/decisions");
      if (!d.total) { decisionsBox.replaceChildren(el("p", { class: "muted" }, "This sweep has no early-stopping schedule, or it has decided nothing yet.")); return; }
      decisionsBox.replaceChildren(el("p", { class: "muted" }, d.total + " decisions, newest first"), el("div", { class: "table-wrap", style: "max-height:300px;overflow:auto" }, el("table", {},
        el("thead", {}, el("tr", {}, ["Trial", "Epoch", "Rung", "Action", "Value", "Threshold", "Why"].map((h) => el("th", {}, h)))),
        el("tbody", {}, d.decisions.map((r) => el("tr", {},
          el("td", {}, el("a", { href: "#/sweep/" + encodeURIComponent(name) + "/trial/" + encodeURIComponent(r.trial_id) }, r.trial_id.slice(0, 12))),
          el("td", { class: "num" }, r.epoch), el("td", { class: "num" }, r.rung), el("td", {}, r.action),
          el("td", { class: "num" }, fmt(r.value)), el("td", { class: "num" }, fmt(r.threshold)),
          el("td", {}, r.metric + " " + fmt(r.value) + (r.action === "continue" || r.action === "promote" ? " inside" : " outside") +
            " the cut " + fmt(r.threshold) + "; " + r.kept + " of " + r.reached + " go on")))))));
    } catch (e) { showError(decisionsBox, e); }
  };

  const refreshFigures = async () => {
    if (!info.plots) { figures.replaceChildren(el("p", { class: "muted" }, "Figures are drawn by `sweep plot`; this server does not draw them.")); return; }
    try {
      const d = await api(base + "/plots");
      if (!d.plots.length) { figures.replaceChildren(el("p", { class: "muted" }, "No figure yet: they are drawn from finished trials.")); return; }
      const stamp = Date.now();
      figures.replaceChildren(...d.plots.map((f) => el("img", { alt: f, src: base + "/plots/" + encodeURIComponent(f) + "?t=" + stamp })));
    } catch (e) { showError(figures, e); }
  };

  const refreshTable = async () => {
    const q = new URLSearchParams({ offset: view.offset, limit: view.limit });
    if (view.sort) q.set("sort", view.sort);
    if (view.desc) q.set("desc", "true");
    if (view.where) q.set("where", view.where);
    if (view.find) q.set("find", view.find);
    if (view.states.length) q.set("states", view.states.join(","));
    if (view.metric) q.set("metric", view.metric);
    let d;
    try { d = await api(base + "/trials?" + q); } catch (e) { showError(tableBox, e); return; }
    const sortBy = (key) => () => {
      if (view.sort === key) view.desc = !view.desc; else { view.sort = key; view.desc = key.startsWith("metric:") && !(view.goal === "min" || /loss|error|perplexity/.test(key)); }
      view.offset = 0; save(); refreshTable();
    };
    const th = (label, key, num) => el("th", { class: "sortable" + (view.sort === key ? " sorted" + (view.desc ? " desc" : "") : ""), onclick: sortBy(key), dataset: { key } }, label);
    const header = el("tr", {}, th("#", "index"), th("Trial", "trial_id"), th("State", "state"), th("Attempts", "attempts"),
      d.params.map((n) => th(n, "param:" + n)), d.metrics.map((n) => th(n, "metric:" + n)), th("Seconds", "duration_s"));
    const rows = d.rows.map((r) => el("tr", { class: "clickable" + (r.trial_id === view.highlight ? " highlighted" : ""), dataset: { trial: r.trial_id },
      onclick: () => (location.hash = "#/sweep/" + encodeURIComponent(name) + "/trial/" + encodeURIComponent(r.trial_id)) },
      el("td", { class: "num" }, r.index), el("td", {}, el("code", {}, r.trial_id.slice(0, 12))), el("td", {}, stateChip(r.state)),
      el("td", { class: "num" }, r.attempts),
      d.params.map((n) => el("td", { class: typeof r.params[n] === "number" ? "num" : "" }, fmt(r.params[n]))),
      d.metrics.map((n) => el("td", { class: "num" }, fmt(r.metrics[n]))),
      el("td", { class: "num" }, fmt(r.duration_s))));
    const last = Math.min(d.offset + d.limit, d.matched);
    tableBox.replaceChildren(
      el("div", { class: "table-wrap" }, el("table", { id: "trial-table" }, el("thead", {}, header), el("tbody", {}, rows))),
      el("div", { class: "pager" },
        el("button", { id: "prev", disabled: d.offset === 0, onclick: () => { view.offset = Math.max(0, view.offset - view.limit); refreshTable(); } }, "‹ Previous"),
        el("span", { id: "shown" }, d.matched ? (d.offset + 1) + "–" + last + " of " + d.matched + " matching (" + d.total + " trials)" : "no trial matches (" + d.total + " trials)"),
        el("button", { id: "next", disabled: last >= d.matched, onclick: () => { view.offset += view.limit; refreshTable(); } }, "Next ›")));
  };

  const refreshCharts = () => Promise.all([refreshCurves(), refreshParallel(), refreshImportance()]);
  const refreshSummary = async () => { try { drawHead(await api(base)); } catch (e) { /* the next change tries again */ } };

  state.onChange = debounce(() => { refreshSummary(); refreshCurves(); refreshTable(); }, 300);
  // Slower views follow the sweep less often.
  const slow = debounce(() => { refreshParallel(); refreshImportance(); refreshDecisions(); }, 3000);
  const onChange = state.onChange;
  state.onChange = (change) => { if (change.sweep === name) { onChange(); slow(); } };
  await Promise.all([refreshTable(), refreshCharts(), refreshDecisions()]);
  refreshFigures();
}

// ---------------------------------------------------------------- one trial

async function trialPage(name, id) {
  const base = "/api/sweeps/" + encodeURIComponent(name);
  const url = base + "/trials/" + encodeURIComponent(id);
  const draw = async () => {
    let t;
    try { t = await api(url); } catch (e) { showError(main, e); return; }
    const metrics = Object.keys(t.metrics).sort();
    const charts = metrics.map((m) => el("div", { class: "chart", style: "height:260px", dataset: { metric: m } }));
    const retry = t.live && (t.state === "failed" || t.state === "cancelled") ? el("button", { id: "retry", onclick: async (e) => {
      e.target.disabled = true;
      try { await act(url + "/retry"); draw(); } catch (err) { e.target.disabled = false; alert(err.message); }
    } }, "Retry trial") : null;
    main.replaceChildren(
      el("p", {}, el("a", { href: "#/sweep/" + encodeURIComponent(name) + "?trial=" + encodeURIComponent(id) }, "← " + name)),
      el("h1", {}, "Trial ", el("code", {}, t.trial_id), " ", stateChip(t.state), " ", retry),
      el("div", { class: "grid" },
        el("div", { class: "card" }, el("h2", {}, "Parameters"), el("table", { class: "kv", id: "params" },
          Object.entries(t.params).map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, fmt(v)))))),
        el("div", { class: "card" }, el("h2", {}, "Final metrics"), el("table", { class: "kv", id: "finals" },
          Object.entries(t.finals).map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", { class: "num" }, fmt(v))))),
          el("p", { class: "muted" }, "workload " + t.workload + " · " + t.attempts_made + " attempts · " +
            (t.duration_s === null ? "" : fmt(t.duration_s) + " s · ") + (t.exit_code === null ? "" : "exit " + t.exit_code)))),
      el("div", { class: "card" }, el("h2", {}, "Attempts"), t.attempts.length ? el("div", { class: "table-wrap" }, el("table", { id: "attempts" },
        el("thead", {}, el("tr", {}, ["Attempt", "Agent", "Outcome", "Exit", "Signal", "Epochs", "Started", "Finished"].map((h) => el("th", {}, h)))),
        el("tbody", {}, t.attempts.map((a) => el("tr", {}, el("td", { class: "num" }, a.attempt), el("td", {}, a.agent), el("td", {}, a.outcome || "running"),
          el("td", { class: "num" }, fmt(a.exit_code)), el("td", { class: "num" }, fmt(a.signal)),
          el("td", {}, a.epochs ? a.epochs[0] + "–" + a.epochs[1] + (a.resumed_after_epoch !== null ? " (resumed)" : "") : "–"),
          el("td", {}, when(a.started_at_ms)), el("td", {}, when(a.finished_at_ms))))))) :
        el("p", { class: "muted" }, "Results files do not keep attempts; the coordinator's page shows them.")),
      el("div", { class: "card" }, el("h2", {}, "Log"), t.log ? el("pre", { class: "log", id: "log" }, t.log) :
        el("p", { class: "muted" }, "No error output was recorded for this trial.")),
      el("div", { class: "card" }, el("h2", {}, "Metrics"), metrics.length ? el("div", { class: "grid", id: "metric-charts" }, charts) : el("p", { class: "muted" }, "No metric reported yet.")));
    metrics.forEach((m, i) => {
      const pts = t.metrics[m];
      charts[i].dataset.points = pts.length;
      chart(charts[i], [{ x: pts.map((p) => p[0]), y: pts.map((p) => p[1]), mode: "lines+markers", type: "scatter", name: pl(m) }],
        { title: { text: pl(m), font: { size: 12 } }, xaxis: { title: { text: "epoch" } }, margin: { l: 60, r: 20, t: 30, b: 40 } });
    });
  };
  state.onChange = debounce(draw, 500);
  const onChange = state.onChange;
  state.onChange = (change) => { if (change.sweep === name) onChange(); };
  await draw();
}

// ---------------------------------------------------------------- agents

async function agentsPage() {
  main.replaceChildren(el("h1", {}, "Agents"), el("div", { id: "agents" }));
  const box = document.getElementById("agents");
  const draw = async () => {
    try {
      const d = await api("/api/agents");
      if (!d.live) { box.replaceChildren(el("p", { class: "muted" }, "Results files hold no agents: open the coordinator's dashboard to see them.")); return; }
      if (!d.agents.length) { box.replaceChildren(el("p", { class: "muted" }, "No agent has been heard from in the last five minutes.")); return; }
      box.replaceChildren(el("div", { class: "table-wrap" }, el("table", {},
        el("thead", {}, el("tr", {}, ["Agent", "Host", "Slots", "Running", "GPUs", "Failures in a row", "Quarantine", "Last heartbeat"].map((h) => el("th", {}, h)))),
        el("tbody", {}, d.agents.map((a) => el("tr", {}, el("td", {}, el("code", {}, a.id)), el("td", {}, a.hostname),
          el("td", { class: "num" }, a.slots), el("td", { class: "num" }, a.running), el("td", {}, gpuCells(a)),
          el("td", { class: "num" }, a.consecutive_failures),
          el("td", {}, a.quarantined ? el("span", { class: "error" }, "quarantined: " + (a.quarantine_reason || "")) : "–"),
          el("td", {}, ago(a.last_seen_ms)))))))); 
    } catch (e) { showError(box, e); }
  };
  state.onChange = debounce(draw, 1000);
  await draw();
}

// Each GPU of an agent with what it last said is left of it: the share not given to trials and the
// free memory the driver reported.
function gpuCells(a) {
  if (!a.gpus.length) return "CPU";
  return a.gpus.map((g, i) => {
    const room = a.gpu_room[i];
    if (!room) return g;
    const parts = [Math.round((room.share || 0) * 100) + "% free"];
    if (room.free_bytes) parts.push((room.free_bytes / 2 ** 30).toFixed(1) + " GiB free");
    return g + " (" + parts.join(", ") + ")";
  }).join("; ");
}

// ---------------------------------------------------------------- routing

async function route() {
  state.onChange = null;
  const [path] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "sweep" && parts.length === 2) return sweepPage(parts[1]);
  if (parts[0] === "sweep" && parts[2] === "trial" && parts.length === 4) return trialPage(parts[1], parts[3]);
  if (parts[0] === "agents") return agentsPage();
  return sweepsPage();
}

async function start() {
  try {
    state.session = await api("/api/session");
    if (state.session.user) document.getElementById("who").textContent = state.session.user;
    document.getElementById("logout").hidden = !state.session.auth;
    if (!state.session.live) document.getElementById("live").title = "read from results files: nothing changes";
  } catch (e) {
    showError(main, e);
    return;
  }
  let lastPath = null;
  window.addEventListener("hashchange", () => {
    const [path] = location.hash.split("?");
    if (path !== lastPath) { lastPath = path; route(); }
  });
  lastPath = location.hash.split("?")[0];
  listen();
  await route();
}

start();
