(function () {
  'use strict';
  var show = window.__bbError || function () {};
  function byId(id) { return document.getElementById(id); }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&#39;';
    });
  }
  function isNum(v) { return typeof v === 'number' && isFinite(v); }
  function r1(v) { return Math.round(v * 10) / 10; }
  function safely(what, fn) {
    try { fn(); } catch (e) { show(what + ': ' + (e && e.message ? e.message : e)); }
  }
  function fmtSig(v) {
    if (!isNum(v)) return '\u2014';
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(3);
    return String(Number(v.toPrecision(5)));
  }
  function fmtBytes(v) {
    if (!isNum(v)) return '\u2014';
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    var a = Math.abs(v);
    return (a >= 100 || i === 0 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2)) + ' ' + units[i];
  }
  function fmtDur(s) {
    if (!isNum(s)) return '\u2014';
    if (s < 120) return s.toFixed(1) + ' s';
    if (s < 7200) return (s / 60).toFixed(1) + ' min';
    return (s / 3600).toFixed(2) + ' h';
  }
  function clip(s, n) { s = String(s); return s.length > n ? s.slice(0, n - 1) + '\u2026' : s; }

  var D = null;
  safely('report data', function () { D = JSON.parse(byId('bitbyte-data').textContent); });
  if (!D || typeof D !== 'object') return;

  // ---------------------------------------------------------------------------------------
  // The pipeline graph: a layered top-to-bottom drawing of the DAG of data edges; token edges
  // (and any edge that closes a cycle) are drawn as back edges on the right.

  var NW = 212, NH = 74, GX = 34, GY = 54, MARGIN = 22, TOP = 16;

  function busyColor(p) {
    var t = Math.max(0, Math.min(1, p / 100));
    return 'rgb(' + Math.round(255 - 40 * t) + ',' + Math.round(255 - 207 * t) + ',' + Math.round(255 - 224 * t) + ')';
  }
  function figures(n, live) {
    var w = n.window && typeof n.window === 'object' ? n.window : null;
    var t = n.total && typeof n.total === 'object' ? n.total : null;
    return live ? (w || t) : (t || w);
  }
  function arrowHead(x, y, fromX, fromY, cls) {
    var dx = x - fromX, dy = y - fromY, len = Math.sqrt(dx * dx + dy * dy) || 1;
    dx /= len; dy /= len;
    var bx = x - dx * 9, by = y - dy * 9, w = 4.5;
    return '<polygon class="' + cls + '" points="' + r1(x) + ',' + r1(y) + ' ' + r1(bx - dy * w) + ',' + r1(by + dx * w) +
      ' ' + r1(bx + dy * w) + ',' + r1(by - dx * w) + '"/>';
  }

  function layout(nodes, edges) {
    var n = nodes.length, index = new Map(), i;
    nodes.forEach(function (nd, k) { if (!index.has(nd.name)) index.set(nd.name, k); });
    var out = [], back = [], fwd = [];
    for (i = 0; i < n; i++) out.push([]);
    edges.forEach(function (e, k) {
      var a = index.get(e.from), b = index.get(e.to);
      if (e.kind === 'token' || a === b) back.push(k);
      else out[a].push({ to: b, k: k });
    });
    // Depth-first search: an edge to a node on the stack closes a cycle and becomes a back edge.
    var mark = new Array(n).fill(0);
    for (var s = 0; s < n; s++) {
      if (mark[s]) continue;
      var stack = [[s, 0]];
      mark[s] = 1;
      while (stack.length) {
        var top = stack[stack.length - 1], v = top[0];
        if (top[1] < out[v].length) {
          var e = out[v][top[1]++];
          if (mark[e.to] === 1) back.push(e.k);
          else {
            fwd.push(e.k);
            if (mark[e.to] === 0) { mark[e.to] = 1; stack.push([e.to, 0]); }
          }
        } else {
          mark[v] = 2;
          stack.pop();
        }
      }
    }
    // Layers: the longest path from a source (Kahn's order over the forward edges).
    var indeg = new Array(n).fill(0), succ = [], pred = [];
    for (i = 0; i < n; i++) { succ.push([]); pred.push([]); }
    fwd.forEach(function (k) {
      var a = index.get(edges[k].from), b = index.get(edges[k].to);
      succ[a].push(b); pred[b].push(a); indeg[b]++;
    });
    var layer = new Array(n).fill(0), queue = [];
    for (i = 0; i < n; i++) if (!indeg[i]) queue.push(i);
    for (var q = 0; q < queue.length; q++) {
      var u = queue[q];
      succ[u].forEach(function (w) {
        layer[w] = Math.max(layer[w], layer[u] + 1);
        if (--indeg[w] === 0) queue.push(w);
      });
    }
    var L = 1;
    for (i = 0; i < n; i++) L = Math.max(L, layer[i] + 1);
    var rows = [];
    for (i = 0; i < L; i++) rows.push([]);
    for (i = 0; i < n; i++) rows[layer[i]].push(i);
    // Order within a layer: a few barycenter sweeps down and up.
    var pos = new Array(n).fill(0);
    function place(r) { r.forEach(function (v, j) { pos[v] = j - (r.length - 1) / 2; }); }
    rows.forEach(place);
    function sweep(list, nb) {
      list.forEach(function (r) {
        var bc = new Map();
        r.forEach(function (v) {
          if (!nb[v].length) { bc.set(v, pos[v]); return; }
          var sum = 0;
          nb[v].forEach(function (w) { sum += pos[w]; });
          bc.set(v, sum / nb[v].length);
        });
        r.sort(function (a, b) { return bc.get(a) - bc.get(b) || a - b; });
        place(r);
      });
    }
    for (var it = 0; it < 4; it++) {
      sweep(rows.slice(1), pred);
      sweep(rows.slice(0, -1).reverse(), succ);
    }
    var widest = 1;
    rows.forEach(function (r) { widest = Math.max(widest, r.length); });
    var inner = widest * NW + (widest - 1) * GX, xy = [];
    for (i = 0; i < n; i++) xy.push({ x: MARGIN + inner / 2 + pos[i] * (NW + GX), y: MARGIN + TOP + layer[i] * (NH + GY) + NH / 2 });
    // Ports: a node's forward edges leave (and arrive) side by side, ordered by the other end's x.
    var outPort = new Map(), inPort = new Map();
    function ports(list, map, other) {
      list.sort(function (a, b) { return xy[other(a)].x - xy[other(b)].x || a - b; });
      var gap = Math.min(28, NW / (list.length + 1));
      list.forEach(function (k, j) { map.set(k, (j - (list.length - 1) / 2) * gap); });
    }
    var outs = [], ins = [];
    for (i = 0; i < n; i++) { outs.push([]); ins.push([]); }
    fwd.forEach(function (k) { outs[index.get(edges[k].from)].push(k); ins[index.get(edges[k].to)].push(k); });
    var toOf = function (k) { return index.get(edges[k].to); }, fromOf = function (k) { return index.get(edges[k].from); };
    for (i = 0; i < n; i++) { ports(outs[i], outPort, toOf); ports(ins[i], inPort, fromOf); }
    return { xy: xy, fwd: fwd, back: back, index: index, outPort: outPort, inPort: inPort, right: MARGIN + inner,
      height: 2 * MARGIN + TOP + L * NH + (L - 1) * GY };
  }

  function nodeLines(nd, f) {
    var busy = f && isNum(f.busy_pct) ? f.busy_pct : null;
    var conc = isNum(nd.concurrency) ? (nd.concurrency === 0 ? '\u221e' : String(nd.concurrency)) : '?';
    var items = f && isNum(f.items_per_s) ? f.items_per_s : null;
    var l3 = busy === null ? (f ? 'no work' : 'no figures') : 'busy ' + busy.toFixed(busy >= 10 ? 0 : 1) + '%';
    // A source waiting on a full limiter (backpressure): say so instead of its ~0% busy.
    if (f && isNum(f.blocked_pct) && f.blocked_pct >= 0.5 && busy !== null && busy < 0.5)
      l3 = 'blocked ' + f.blocked_pct.toFixed(0) + '%';
    if (items !== null) l3 += ' \u00b7 ' + items.toFixed(items >= 100 ? 0 : items >= 10 ? 1 : 2) + ' items/s';
    var l4 = 'queue ' + (isNum(nd.queue) ? nd.queue : '\u2014') + (isNum(nd.queue_bound) ? ' / ' + nd.queue_bound : '');
    if (isNum(nd.in_flight)) l4 += ' \u00b7 in flight ' + nd.in_flight;
    return { busy: busy, lines: [(nd.kind || '?') + ' \u00d7 ' + conc, l3, l4] };
  }

  function nodeTitle(nd, f) {
    var t = [nd.name + ' (' + (nd.kind || '?') + ', concurrency ' + (nd.concurrency === 0 ? 'unlimited' : nd.concurrency) + ')'];
    ['in', 'out', 'queue', 'in_flight', 'bytes', 'busy_s', 'blocked_s'].forEach(function (k) {
      if (isNum(nd[k])) t.push(k + ': ' + (k === 'bytes' ? fmtBytes(nd[k]) : fmtSig(nd[k])));
    });
    if (f) ['busy_pct', 'idle_pct', 'blocked_pct', 'items_per_s', 'bytes_per_s', 'seconds'].forEach(function (k) {
      if (isNum(f[k])) t.push(k + ': ' + (k === 'bytes_per_s' ? fmtBytes(f[k]) + '/s' : fmtSig(f[k])));
    });
    return t.join('\n');
  }

  function graphSvg(g, gi, live) {
    var nodes = Array.isArray(g.nodes) ? g.nodes.filter(function (x) { return x && typeof x === 'object' && typeof x.name === 'string'; }) : [];
    if (!nodes.length) return '<p class="none">No node in this graph.</p>';
    var names = new Set(nodes.map(function (x) { return x.name; }));
    var edges = Array.isArray(g.edges) ? g.edges.filter(function (x) {
      return x && typeof x === 'object' && names.has(x.from) && names.has(x.to);
    }) : [];
    var lay = layout(nodes, edges);
    var W = Math.round(lay.right + MARGIN + (lay.back.length ? 120 + 18 * lay.back.length : 0)), H = Math.round(lay.height);
    var s = ['<svg class="graph-drawing" data-graph-index="' + gi + '" width="' + W + '" height="' + H + '" viewBox="0 0 ' + W + ' ' + H +
      '" role="img" aria-label="' + esc('flow graph ' + (g.name || '')) + '">'];
    lay.fwd.forEach(function (k) {
      var e = edges[k], a = lay.xy[lay.index.get(e.from)], b = lay.xy[lay.index.get(e.to)];
      var x1 = a.x + lay.outPort.get(k), y1 = a.y + NH / 2, x2 = b.x + lay.inPort.get(k), y2 = b.y - NH / 2;
      var dy = Math.max(18, (y2 - y1) / 2);
      s.push('<path class="edge data" data-from="' + esc(e.from) + '" data-to="' + esc(e.to) + '" d="M' + r1(x1) + ',' + r1(y1) +
        ' C' + r1(x1) + ',' + r1(y1 + dy) + ' ' + r1(x2) + ',' + r1(y2 - dy) + ' ' + r1(x2) + ',' + r1(y2) + '"/>');
      s.push(arrowHead(x2, y2, x2, y2 - dy, 'arrow'));
      if (typeof e.label === 'string' && e.label) {
        // Beside the curve's middle, on the side it bends away from.
        var left = x2 < x1 - 1;
        s.push('<text class="elabel" x="' + r1((x1 + x2) / 2 + (left ? -7 : 7)) + '" y="' + r1((y1 + y2) / 2 + 4) + '"' +
          (left ? ' text-anchor="end"' : '') + '>' + esc(clip(e.label, 36)) + '</text>');
      }
    });
    lay.back.forEach(function (k, j) {
      var e = edges[k], a = lay.xy[lay.index.get(e.from)], b = lay.xy[lay.index.get(e.to)];
      var x1 = a.x + NW / 2, y1 = a.y, x2 = b.x + NW / 2, y2 = b.y;
      if (a === b) { y1 += 14; y2 -= 14; }
      var bx = lay.right + 44 + 18 * j, cls = e.kind === 'token' ? 'token' : 'cycle';
      s.push('<path class="edge back ' + cls + '" data-from="' + esc(e.from) + '" data-to="' + esc(e.to) + '" d="M' + r1(x1) + ',' + r1(y1) +
        ' C' + r1(bx) + ',' + r1(y1) + ' ' + r1(bx) + ',' + r1(y2) + ' ' + r1(x2) + ',' + r1(y2) + '"/>');
      s.push(arrowHead(x2, y2, bx, y2, 'arrow back'));
      if (typeof e.label === 'string' && e.label) {
        s.push('<text class="elabel back" x="' + r1((x1 + 6 * bx + x2) / 8 + 5) + '" y="' + r1((y1 + y2) / 2 + 4) + '">' + esc(clip(e.label, 24)) + '</text>');
      }
    });
    nodes.forEach(function (nd, i) {
      var p = lay.xy[i], f = figures(nd, live), bn = typeof g.bottleneck === 'string' && g.bottleneck === nd.name;
      var info = nodeLines(nd, f);
      var cls = 'node' + (bn ? ' bottleneck' : '') + (info.busy !== null && info.busy > 65 ? ' dark' : '');
      s.push('<g class="' + cls + '" data-name="' + esc(nd.name) + '" data-busy="' + (info.busy === null ? '' : r1(info.busy)) +
        '" transform="translate(' + r1(p.x - NW / 2) + ',' + r1(p.y - NH / 2) + ')">');
      s.push('<title>' + esc(nodeTitle(nd, f)) + '</title>');
      s.push('<rect class="box" width="' + NW + '" height="' + NH + '" rx="7" fill="' + (info.busy === null ? '#eeeeee' : busyColor(info.busy)) + '"' +
        (info.busy === null ? ' stroke-dasharray="4 3"' : '') + '/>');
      s.push('<text class="name" x="10" y="18">' + esc(clip(nd.name, bn ? 17 : 26)) + '</text>');
      info.lines.forEach(function (line, k) { s.push('<text x="10" y="' + (35 + 15 * k) + '">' + esc(clip(line, 32)) + '</text>'); });
      if (bn) {
        s.push('<g class="tag"><rect x="' + (NW - 82) + '" y="-9" width="76" height="18" rx="9"/><text x="' + (NW - 44) +
          '" y="4" text-anchor="middle">bottleneck</text></g>');
      }
      s.push('</g>');
    });
    s.push('</svg>');
    return s.join('');
  }

  function drawPipeline() {
    var P = D.pipeline;
    if (!P || typeof P !== 'object' || !Array.isArray(P.graphs)) return;
    P.graphs.forEach(function (g, gi) {
      if (!g || typeof g !== 'object') return;
      var box = document.querySelector('.graph[data-graph-index="' + gi + '"] .graph-svg');
      if (!box) return;
      var live = (typeof g.state === 'string' && g.state ? g.state : P.state) === 'running';
      safely('graph ' + gi, function () { box.innerHTML = graphSvg(g, gi, live); });
    });
  }

  // ---------------------------------------------------------------------------------------
  // Charts: one SVG each, x = step or wall time (toggle), nice ticks, hover tooltip.

  var CHARTS = [
    { id: 'loss', src: 'steps', key: 'loss', label: 'loss', y: 'loss (nats/byte)' },
    { id: 'bpb', src: 'evals', key: 'val_bpb', label: 'val bpb', y: 'bits per byte', markers: true },
    { id: 'bpb_int8', src: 'quant_evals', key: 'val_bpb_int8', label: 'val bpb int8', y: 'bits per byte', markers: true },
    { id: 'bpb_int4', src: 'quant_evals', key: 'val_bpb_int4', label: 'val bpb int4', y: 'bits per byte', markers: true },
    { id: 'tel_k', src: 'telemetry', key: 'k', label: 'K', y: 'negentropy', markers: true },
    { id: 'tel_c', src: 'telemetry', key: 'c', label: 'C', y: 'LZ complexity', markers: true },
    { id: 'tel_s', src: 'telemetry', key: 's', label: 'S', y: 'symbiosis', markers: true },
    { id: 'throughput', src: 'steps', key: 'bytes_per_s', label: 'throughput', y: 'B/s', bytes: true, zero: true },
    { id: 'wait', src: 'steps', key: 'data_wait_frac', label: 'data wait', y: '% of step', scale: 100, zero: true, unit: '%' },
    { id: 'stall', src: 'steps', key: 'ckpt_stall_s', label: 'checkpoint stall', y: 'ms', scale: 1000, zero: true, unit: ' ms', markers: true }
  ];

  function ticks(lo, hi, n, integer) {
    var raw = (hi - lo) / Math.max(1, n), p = Math.pow(10, Math.floor(Math.log(raw) / Math.LN10));
    var f = raw / p, st = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
    if (integer && st < 1) st = 1;
    if (!(st > 0) || !isFinite(st)) return { values: [lo, hi], step: Math.abs(hi - lo) || 1 };
    var first = Math.ceil(lo / st - 1e-9), values = [];
    for (var k = 0; k < 60; k++) {
      var t = (first + k) * st;
      if (t > hi + st * 1e-9) break;
      values.push(Math.abs(t) < st * 1e-9 ? 0 : t);
    }
    return { values: values, step: st };
  }
  function tickLabel(v, st) {
    var div = 1, suffix = '';
    if (st >= 1e6) { div = 1e6; suffix = 'M'; } else if (st >= 1e4) { div = 1e3; suffix = 'k'; }
    var d = Math.max(0, Math.min(10, -Math.floor(Math.log(st / div) / Math.LN10 + 1e-9)));
    return (v / div).toFixed(d) + suffix;
  }
  function valueText(c, y) {
    if (c.bytes) return fmtBytes(y) + '/s';
    if (c.unit) return (Math.abs(y) >= 100 ? y.toFixed(0) : y.toFixed(2)) + c.unit;
    return fmtSig(y);
  }

  function seriesPoints(c) {
    var rec = D[c.src] && typeof D[c.src] === 'object' ? D[c.src] : {};
    var steps = Array.isArray(rec.step) ? rec.step : [], vals = Array.isArray(rec[c.key]) ? rec[c.key] : [];
    var walls = Array.isArray(rec.wall_s) ? rec.wall_s : [], pts = [];
    for (var i = 0; i < steps.length; i++) {
      if (!isNum(vals[i]) || !isNum(steps[i])) continue;
      pts.push({ s: steps[i], w: isNum(walls[i]) ? walls[i] : null, y: vals[i] * (c.scale || 1) });
    }
    return pts;
  }

  function drawChart(c, mode) {
    var fig = byId('chart-' + c.id);
    if (!fig) return;
    var plot = fig.querySelector('.plot'), tip = fig.querySelector('.tip'), cap = fig.querySelector('figcaption');
    tip.hidden = true;
    var all = seriesPoints(c), pts = [];
    all.forEach(function (p) {
      var x = mode === 'wall' ? p.w : p.s;
      if (isNum(x)) pts.push({ x: x, y: p.y, p: p });
    });
    pts.sort(function (a, b) { return a.x - b.x; });
    fig.setAttribute('data-points', String(pts.length));
    if (!pts.length) {
      plot.innerHTML = '<p class="nodata">No data' + (all.length ? ' with elapsed_s for a wall-time axis.' : '.') + '</p>';
      return;
    }
    var unit = { div: 1, name: 'step' };
    if (mode === 'wall') {
      var last = pts[pts.length - 1].x;
      unit = last >= 3 * 3600 ? { div: 3600, name: 'wall time (h)' } : last >= 180 ? { div: 60, name: 'wall time (min)' } : { div: 1, name: 'wall time (s)' };
    }
    var W = 560, H = 260, ml = 66, mr = 16, mt = 12, mb = 44, pw = W - ml - mr, ph = H - mt - mb;
    var x0 = pts[0].x / unit.div, x1 = pts[pts.length - 1].x / unit.div;
    if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
    var y0 = Infinity, y1 = -Infinity;
    pts.forEach(function (q) { y0 = Math.min(y0, q.y); y1 = Math.max(y1, q.y); });
    var nonNegative = y0 >= 0;
    if (c.zero && nonNegative) y0 = 0;
    if (!(y1 > y0)) {
      var d = Math.abs(y1) * 0.1 || 1;
      y0 -= d; y1 += d;
      if (c.zero && nonNegative) y0 = Math.max(0, y0);
    } else {
      var pad = (y1 - y0) * 0.06;
      y1 += pad;
      if (!(c.zero && nonNegative)) y0 -= pad;
    }
    function X(raw) { return ml + (raw / unit.div - x0) / (x1 - x0) * pw; }
    function Y(v) { return mt + (1 - (v - y0) / (y1 - y0)) * ph; }
    // Byte rates: ticks at round numbers of one binary unit (KiB/s, MiB/s, ...).
    var ydiv = 1, yname = c.y;
    if (c.bytes) {
      var units = ['B/s', 'KiB/s', 'MiB/s', 'GiB/s', 'TiB/s'], k = 0, top = Math.max(Math.abs(y0), Math.abs(y1));
      while (top / ydiv >= 1024 && k < units.length - 1) { ydiv *= 1024; k++; }
      yname = units[k];
    }
    var xt = ticks(x0, x1, 6, mode === 'step'), yt = ticks(y0 / ydiv, y1 / ydiv, 5, false);
    // Very long series: keep the lowest and highest point of each half-pixel column.
    var draw = pts;
    if (pts.length > 2400) {
      draw = [];
      var cols = pw * 2, cur = -1, lo = null, hi = null;
      var flush = function () {
        if (!lo) return;
        if (lo === hi) draw.push(lo);
        else if (lo.x <= hi.x) draw.push(lo, hi);
        else draw.push(hi, lo);
      };
      pts.forEach(function (q) {
        var col = Math.floor((X(q.x) - ml) / pw * cols);
        if (col !== cur) { flush(); cur = col; lo = hi = q; }
        else { if (q.y < lo.y) lo = q; if (q.y > hi.y) hi = q; }
      });
      flush();
    }
    var s = ['<svg class="chart-svg" data-chart="' + c.id + '" viewBox="0 0 ' + W + ' ' + H + '" role="img" aria-label="' + esc(cap ? cap.textContent : c.label) + '">'];
    yt.values.forEach(function (t) {
      var y = r1(Y(t * ydiv));
      s.push('<line class="grid" x1="' + ml + '" x2="' + (ml + pw) + '" y1="' + y + '" y2="' + y + '"/>');
      s.push('<text class="tick" x="' + (ml - 6) + '" y="' + r1(y + 4) + '" text-anchor="end">' + esc(tickLabel(t, yt.step)) + '</text>');
    });
    xt.values.forEach(function (t) {
      var x = r1(ml + (t - x0) / (x1 - x0) * pw);
      s.push('<line class="grid" x1="' + x + '" x2="' + x + '" y1="' + mt + '" y2="' + (mt + ph) + '"/>');
      s.push('<line class="tickmark" x1="' + x + '" x2="' + x + '" y1="' + (mt + ph) + '" y2="' + (mt + ph + 5) + '"/>');
      s.push('<text class="tick" x="' + x + '" y="' + (mt + ph + 18) + '" text-anchor="middle">' + esc(tickLabel(t, xt.step)) + '</text>');
    });
    s.push('<line class="axis" x1="' + ml + '" y1="' + mt + '" x2="' + ml + '" y2="' + (mt + ph) + '"/>');
    s.push('<line class="axis" x1="' + ml + '" y1="' + (mt + ph) + '" x2="' + (ml + pw) + '" y2="' + (mt + ph) + '"/>');
    s.push('<text class="axis-label x-label" x="' + (ml + pw / 2) + '" y="' + (H - 6) + '" text-anchor="middle">' + esc(unit.name) + '</text>');
    s.push('<text class="axis-label y-label" transform="translate(14,' + (mt + ph / 2) + ') rotate(-90)" text-anchor="middle">' + esc(yname) + '</text>');
    // Growth stages (growth.depth, growth.seq_len): a dashed line at each, on the step axis.
    if (mode !== 'wall' && Array.isArray(D.growth)) {
      D.growth.forEach(function (g) {
        var gx = g.step / unit.div;
        if (!(gx >= x0 && gx <= x1)) return;
        var x = r1(ml + (gx - x0) / (x1 - x0) * pw);
        s.push('<line class="growth" x1="' + x + '" x2="' + x + '" y1="' + mt + '" y2="' + (mt + ph) + '"><title>' + esc('step ' + g.step + ': ' + g.what) + '</title></line>');
      });
    }
    s.push('<polyline class="series" data-points="' + draw.length + '" points="' +
      draw.map(function (q) { return r1(X(q.x)) + ',' + r1(Y(q.y)); }).join(' ') + '"/>');
    if ((c.markers || pts.length === 1) && pts.length <= 400) {
      pts.forEach(function (q) { s.push('<circle class="marker" cx="' + r1(X(q.x)) + '" cy="' + r1(Y(q.y)) + '" r="2.8"/>'); });
    }
    s.push('<line class="focus-line" visibility="hidden" x1="0" x2="0" y1="' + mt + '" y2="' + (mt + ph) + '"/>');
    s.push('<circle class="focus-dot" visibility="hidden" r="4" cx="0" cy="0"/>');
    s.push('<rect class="hover" x="' + ml + '" y="' + mt + '" width="' + pw + '" height="' + ph + '"/>');
    s.push('</svg>');
    plot.innerHTML = s.join('');

    var svg = plot.querySelector('svg'), fl = svg.querySelector('.focus-line'), fd = svg.querySelector('.focus-dot');
    svg.addEventListener('mousemove', function (ev) {
      var rect = svg.getBoundingClientRect();
      if (!rect.width) return;
      var vx = (ev.clientX - rect.left) * W / rect.width;
      var xv = (x0 + (vx - ml) / pw * (x1 - x0)) * unit.div;
      var lo = 0, hi = pts.length - 1;
      while (hi - lo > 1) {
        var mid = (lo + hi) >> 1;
        if (pts[mid].x < xv) lo = mid; else hi = mid;
      }
      var q = Math.abs(pts[lo].x - xv) <= Math.abs(pts[hi].x - xv) ? pts[lo] : pts[hi];
      var px = r1(X(q.x)), py = r1(Y(q.y));
      fl.setAttribute('x1', px); fl.setAttribute('x2', px); fl.setAttribute('visibility', 'visible');
      fd.setAttribute('cx', px); fd.setAttribute('cy', py); fd.setAttribute('visibility', 'visible');
      tip.innerHTML = '<b>step ' + esc(q.p.s) + '</b>' + (q.p.w !== null ? ' \u00b7 ' + esc(fmtDur(q.p.w)) : '') + '<br>' +
        esc(c.label) + ' ' + esc(valueText(c, q.y));
      tip.hidden = false;
      var fr = fig.getBoundingClientRect();
      var left = rect.left - fr.left + px * rect.width / W + 12, topPx = rect.top - fr.top + py * rect.height / H - 14;
      if (left > fr.width - 190) left -= 210;
      tip.style.left = Math.max(0, left) + 'px';
      tip.style.top = Math.max(0, topPx) + 'px';
    });
    svg.addEventListener('mouseleave', function () {
      tip.hidden = true;
      fl.setAttribute('visibility', 'hidden');
      fd.setAttribute('visibility', 'hidden');
    });
  }

  function xMode() {
    var r = document.querySelector('input[name="xaxis"]:checked');
    return r && r.value === 'wall' ? 'wall' : 'step';
  }
  function drawCharts() {
    var mode = xMode();
    CHARTS.forEach(function (c) { safely('chart ' + c.id, function () { drawChart(c, mode); }); });
    document.body.setAttribute('data-xaxis', mode);
  }

  // report.html#selftest: hovers over every chart and flips the x-axis toggle, then records
  // the outcome in <body data-selftest="ok" | "fail: ...">, for the browser test.
  function selfTest() {
    var fails = [];
    CHARTS.forEach(function (c) {
      var fig = byId('chart-' + c.id), svg = fig && fig.querySelector('svg.chart-svg');
      if (!svg) return;
      var r = svg.getBoundingClientRect(), tip = fig.querySelector('.tip');
      svg.dispatchEvent(new MouseEvent('mousemove', { clientX: r.left + r.width * 0.6, clientY: r.top + r.height / 2, bubbles: true }));
      if (tip.hidden || !/^step \d+/.test(tip.textContent)) fails.push('no tooltip over chart ' + c.id);
      if (svg.querySelector('.focus-dot').getAttribute('visibility') !== 'visible') fails.push('no focus dot in chart ' + c.id);
      svg.dispatchEvent(new MouseEvent('mouseleave'));
      if (!tip.hidden) fails.push('the tooltip of chart ' + c.id + ' stays after the mouse leaves');
    });
    ['wall', 'step'].forEach(function (mode) {
      var radio = document.querySelector('input[name="xaxis"][value="' + mode + '"]');
      radio.checked = true;
      radio.dispatchEvent(new Event('change'));
      var label = document.querySelector('#chart-loss .x-label');
      if (document.body.getAttribute('data-xaxis') !== mode) fails.push('the toggle does not switch to ' + mode);
      else if (label && (mode === 'wall') !== /wall time/.test(label.textContent)) fails.push('x label "' + label.textContent + '" in ' + mode + ' mode');
    });
    document.body.setAttribute('data-selftest', fails.length ? 'fail: ' + fails.join('; ') : 'ok');
  }

  safely('pipeline', drawPipeline);
  safely('charts', function () {
    // report.html#wall opens with wall time on the x axis.
    var wall = document.querySelector('input[name="xaxis"][value="wall"]');
    if (wall && window.location.hash === '#wall') wall.checked = true;
    Array.prototype.forEach.call(document.querySelectorAll('input[name="xaxis"]'), function (r) {
      r.addEventListener('change', drawCharts);
    });
    drawCharts();
  });
  if (window.location.hash === '#selftest') safely('self-test', selfTest);
  document.body.setAttribute('data-rendered', '1');
})();
