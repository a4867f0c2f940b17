// Isola's live status page: polls /status and /status/history once a second and redraws.
// Data from the server is only ever inserted as text (textContent, SVG attributes set from
// numbers), never as markup, so a hostile request path cannot inject anything.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const W = 420, H = 120, PAD = 30;
  let lastOk = 0;
  // A page opened as /status?token=... passes the token on to its polls.
  const token = new URLSearchParams(location.search).get("token");
  const tq = token ? "?token=" + encodeURIComponent(token) : "";

  function el(tag, text) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function size(b) {
    if (b < 1024) return b + " B";
    if (b < 1048576) return (b / 1024).toFixed(1) + " KiB";
    if (b < 1073741824) return (b / 1048576).toFixed(1) + " MiB";
    return (b / 1073741824).toFixed(2) + " GiB";
  }
  function dur(ms) {
    if (ms < 1000) return ms + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    return Math.floor(ms / 60000) + " min " + Math.floor((ms % 60000) / 1000) + " s";
  }
  function table(rows, head) {
    const t = el("table");
    if (head) {
      const tr = el("tr");
      head.forEach((h) => tr.appendChild(el("th", h)));
      t.appendChild(tr);
    }
    rows.forEach((r) => {
      const tr = el("tr");
      r.forEach((c, i) => tr.appendChild(el(!head && i === 0 ? "th" : "td", c)));
      t.appendChild(tr);
    });
    return t;
  }

  // series: [{name, color, values: [number]}]; xs: seconds relative to now.
  function plot(title, unit, xs, series) {
    const fig = el("figure");
    fig.className = "plot";
    fig.appendChild(el("figcaption", title));
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("width", W);
    svg.setAttribute("height", H + 20);
    svg.setAttribute("role", "img");
    let max = 0;
    series.forEach((s) => s.values.forEach((v) => { if (v > max) max = v; }));
    if (max <= 0) max = 1;
    const x0 = xs.length ? xs[0] : -1;
    const span = Math.max(1, -x0);
    const sx = (x) => PAD + ((x - x0) / span) * (W - PAD - 5);
    const sy = (v) => 5 + (H - 10) * (1 - v / max);
    const axis = document.createElementNS(SVG, "text");
    axis.setAttribute("x", 2);
    axis.setAttribute("y", 12);
    axis.setAttribute("font-size", "10");
    axis.textContent = unit(max);
    svg.appendChild(axis);
    series.forEach((s, k) => {
      const pts = s.values.map((v, i) => sx(xs[i]).toFixed(1) + "," + sy(v).toFixed(1));
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("fill", "none");
      line.setAttribute("stroke", s.color);
      line.setAttribute("stroke-width", "1.5");
      line.setAttribute("points", pts.join(" "));
      line.setAttribute("data-series", s.name);
      svg.appendChild(line);
      const last = s.values.length ? s.values[s.values.length - 1] : 0;
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("x", PAD + k * Math.floor((W - PAD) / series.length));
      label.setAttribute("y", H + 15);
      label.setAttribute("font-size", "11");
      label.setAttribute("fill", s.color);
      label.textContent = s.name + ": " + unit(last);
      svg.appendChild(label);
    });
    fig.appendChild(svg);
    return fig;
  }

  function drawPlots(h) {
    const f = {};
    h.fields.forEach((n, i) => { f[n] = i; });
    const rows = h.samples;
    if (rows.length < 2) return;
    const now = rows[rows.length - 1][f.t_ms];
    const xs = rows.slice(1).map((r) => (r[f.t_ms] - now) / 1000);
    const gauge = (n) => rows.slice(1).map((r) => r[f[n]]);
    const rate = (n) => rows.slice(1).map((r, i) => {
      const dt = (r[f.t_ms] - rows[i][f.t_ms]) / 1000;
      const dv = r[f[n]] - rows[i][f[n]];
      return dt > 0 && dv > 0 ? dv / dt : 0;
    });
    // The mean of `sum` per unit of `count` over each interval (0 when count did not move).
    const mean = (sum, count) => rows.slice(1).map((r, i) => {
      const dn = r[f[count]] - rows[i][f[count]];
      const ds = r[f[sum]] - rows[i][f[sum]];
      return dn > 0 && ds > 0 ? ds / dn : 0;
    });
    const us = (n) => rows.slice(1).map((r) => r[f[n]] / 1000);
    const ms = (v) => (v < 10 ? v.toFixed(2) : Math.round(v).toString()) + " ms";
    const num = (v) => (Math.round(v * 10) / 10).toString();
    const perS = (v) => num(v) + "/s";
    const box = document.getElementById("plots");
    const figs = [
      plot("Requests/s by outcome", perS, xs, [
        { name: "2xx", color: "#2e7d32", values: rate("responses_2xx") },
        { name: "4xx", color: "#ef6c00", values: rate("responses_4xx") },
        { name: "5xx", color: "#c62828", values: rate("responses_5xx") },
        { name: "503 shed", color: "#6a1b9a", values: rate("shed") },
      ]),
      plot("Latency", ms, xs, [
        { name: "p50", color: "#1565c0", values: us("latency_p50_us") },
        { name: "p99", color: "#c62828", values: us("latency_p99_us") },
      ]),
      plot("Queue", num, xs, [{ name: "waiting", color: "#6a1b9a", values: gauge("queue_len") }]),
      plot("Wait for a worker (mean)", ms, xs, [
        { name: "wait", color: "#6a1b9a", values: mean("wait_us", "waited").map((v) => v / 1000) },
      ]),
      plot("Workers", num, xs, [
        { name: "busy", color: "#c62828", values: gauge("busy") },
        { name: "idle", color: "#2e7d32", values: gauge("idle") },
      ]),
      plot("Worker starts and ends /s", perS, xs, [
        { name: "spawned", color: "#1565c0", values: rate("spawned") },
        { name: "retired", color: "#2e7d32", values: rate("retired") },
        { name: "crashed", color: "#c62828", values: rate("crashed") },
      ]),
      plot("Why workers ended /s", perS, xs, [
        { name: "requests", color: "#2e7d32", values: rate("retired_requests") },
        { name: "lifetime", color: "#1565c0", values: rate("retired_lifetime") },
        { name: "memory", color: "#ef6c00", values: rate("retired_memory") },
        { name: "signal", color: "#c62828", values: rate("crashed_signal") },
      ]),
      plot("Worker memory", size, xs, [
        { name: "PSS total", color: "#2e7d32", values: gauge("worker_pss") },
        { name: "RSS total", color: "#1565c0", values: gauge("worker_rss") },
        { name: "RSS largest", color: "#ef6c00", values: gauge("worker_rss_max") },
      ]),
      plot("Store", perS, xs, [{ name: "commands", color: "#1565c0", values: rate("store_commands") }]),
      plot("Store memory", size, xs, [{ name: "used", color: "#6a1b9a", values: gauge("store_memory") }]),
      plot("Jobs/s", perS, xs, [
        { name: "done", color: "#2e7d32", values: rate("jobs_done") },
        { name: "failed", color: "#c62828", values: rate("jobs_failed") },
      ]),
    ];
    box.replaceChildren(...figs);
  }

  function drawSites(st) {
    const out = [];
    (st.sites || []).forEach((s) => {
      const p = s.pool;
      out.push(el("h2", s.name));
      out.push(table([
        ["docroot", s.docroot],
        ["PHP backend", p.backend_note ? p.backend + ": " + p.backend_note : p.backend],
        ["mode", p.mode],
        ["accepted requests", p.accepted],
        ["workers idle / busy / total", p.idle + " / " + p.busy + " / " + p.total],
        ["max children", p.max_children],
        ["queue now / max seen / size", p.queue_len + " / " + p.max_queue_len + " / " + p.queue_size],
        ["queue full / timeouts", p.queue_full + " / " + p.queue_timeouts],
        ["workers spawned / crashed / retired", p.spawned + " / " + p.crashed + " / " + p.retired],
      ]));
      out.push(el("h3", "Workers"));
      out.push(table(s.workers.map((w) => {
        const r = w.request;
        return [
          w.pid, w.state, w.requests,
          w.rss_bytes == null ? "-" : size(w.rss_bytes),
          w.pss_bytes == null ? "-" : size(w.pss_bytes),
          dur(w.elapsed_ms),
          r ? r.method + " " + r.uri + " (" + r.script + ")" : "",
          r ? r.client : "",
          r ? r.id : "",
        ];
      }), ["pid", "state", "requests", "RSS", "PSS", "elapsed", "request", "client", "id"]));
    });
    document.getElementById("sites").replaceChildren(...out);
    document.getElementById("uptime").textContent = dur(st.uptime_seconds * 1000);
  }

  async function poll() {
    try {
      const [st, h] = await Promise.all([
        fetch("/status" + tq, { headers: { Accept: "application/json" }, credentials: "same-origin" }).then((r) => r.json()),
        fetch("/status/history" + tq, { credentials: "same-origin" }).then((r) => r.json()),
      ]);
      drawSites(st);
      drawPlots(h);
      lastOk = Date.now();
    } catch (e) {
      // Shown as staleness below; the next poll tries again.
    }
  }
  function fresh() {
    const f = document.getElementById("fresh");
    if (!lastOk) { f.textContent = "waiting for the first update"; return; }
    const age = Date.now() - lastOk;
    f.textContent = "updated " + dur(age) + " ago";
    f.className = age > 5000 ? "stale" : "";
  }
  poll();
  setInterval(poll, 1000);
  setInterval(fresh, 250);
})();
