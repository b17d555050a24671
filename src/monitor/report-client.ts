/**
 * The script of the HTML report (runs in the page, after uPlot): reads the run's series from
 * `<script id="report-data" type="application/json">` and draws every chart. Kept as plain
 * JavaScript text so the report needs no build step and no network.
 */
export const REPORT_CLIENT_JS = String.raw`
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('report-data').textContent);
  var main = document.getElementById('charts');
  var W = Math.max(480, Math.min(1100, main.clientWidth || 1000));
  var drawn = [];
  var COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];

  function section(id, title, note) {
    var s = document.createElement('section');
    s.className = 'chart';
    s.dataset.chart = id;
    var h = document.createElement('h2');
    h.textContent = title;
    s.appendChild(h);
    if (note) { var p = document.createElement('p'); p.className = 'note'; p.textContent = note; s.appendChild(p); }
    main.appendChild(s);
    return s;
  }

  function lineChart(id, title, data, series, opts) {
    opts = opts || {};
    var el = section(id, title, opts.note);
    var u = new uPlot({
      width: W, height: opts.height || 260,
      scales: { x: { time: false }, y: opts.yScale || {} },
      axes: [{ label: 'step' }, Object.assign({ label: opts.ylabel || '', size: 70 }, opts.yValues ? { values: opts.yValues } : {})],
      series: [{ label: 'step' }].concat(series.map(function (s, i) {
        return Object.assign({ stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true }, s);
      })),
      legend: { live: true },
    }, data, el);
    drawn.push(u);
    return u;
  }

  var fmt = function (v, d) { return v === null || v === undefined ? '-' : Number(v).toFixed(d === undefined ? 4 : d); };

  // loss: train (logged steps), val (evaluations), the best val loss as one large point
  var t = D.train, e = D.evals;
  if (t.step.length + e.step.length > 0) {
    var tables = [[t.step, t.loss], [e.step, e.valLoss]];
    if (D.best) tables.push([[D.best.step], [D.best.valLoss]]);
    var joined = uPlot.join(tables);
    var series = [{ label: 'train loss' }, { label: 'val loss', points: { show: true, size: 6 } }];
    if (D.best) series.push({ label: 'best val ' + fmt(D.best.valLoss) + ' @ ' + D.best.step, stroke: '#000', width: 0, points: { show: true, size: 12, fill: '#ffd700' } });
    lineChart('loss', 'Loss', joined, series, { ylabel: 'cross-entropy (nats)', height: 320 });
  }
  if (t.step.length > 0) {
    lineChart('lr', 'Learning rate', [t.step, t.lr], [{ label: 'lr' }], { ylabel: 'lr', yValues: function (u, vals) { return vals.map(function (v) { return v.toExponential(1); }); } });
    lineChart('tokens', 'Training speed', [t.step, t.tokensPerSecond], [{ label: 'tokens/s' }], { ylabel: 'tokens/s' });
  }

  // per-layer quantisation error
  var q = D.quant;
  if (q.step.length > 0) {
    lineChart('ternary', 'Ternary codes', [q.step, q.neg, q.zero, q.pos], [{ label: '-1' }, { label: '0' }, { label: '+1' }],
      { ylabel: 'fraction', yScale: { range: [0, 1] }, note: 'mean over the ternary projections' });
    var meanFlip = q.step.map(function (_, j) {
      var s = 0, n = 0;
      q.flipRate.forEach(function (row) { if (row[j] !== null) { s += row[j]; n++; } });
      return n ? s / n : null;
    });
    var maxFlip = q.step.map(function (_, j) {
      var m = null;
      q.flipRate.forEach(function (row) { if (row[j] !== null && (m === null || row[j] > m)) m = row[j]; });
      return m;
    });
    lineChart('flip', 'Flip rate', [q.step, meanFlip, maxFlip], [{ label: 'mean' }, { label: 'max (a projection)' }],
      { ylabel: 'fraction of codes changed', note: 'codes that changed since the previous report' });
    heatmap('sqnr-weight', 'Weight SQNR per projection (dB)', q.step, q.layers, q.weightSqnrDb);
    if (q.activationSqnrDb.some(function (r) { return r.some(function (v) { return v !== null; }); })) {
      heatmap('sqnr-activation', 'Activation SQNR per projection (dB)', q.step, q.layers, q.activationSqnrDb);
    }
  }

  function color(x) { // viridis, 5 stops
    var stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
    var p = Math.max(0, Math.min(1, x)) * (stops.length - 1), i = Math.min(stops.length - 2, Math.floor(p)), f = p - i;
    var c = stops[i].map(function (a, k) { return Math.round(a + f * (stops[i + 1][k] - a)); });
    return 'rgb(' + c.join(',') + ')';
  }

  function heatmap(id, title, steps, layers, values) {
    var el = section(id, title, 'rows: projections; columns: error-analysis reports (hover for values)');
    var dpr = window.devicePixelRatio || 1;
    var labelW = 300, rowH = 14, top = 10, bottom = 40;
    var w = W, h = top + layers.length * rowH + bottom;
    var cv = document.createElement('canvas');
    cv.width = w * dpr; cv.height = h * dpr; cv.style.width = w + 'px'; cv.style.height = h + 'px';
    el.appendChild(cv);
    var ctx = cv.getContext('2d');
    ctx.scale(dpr, dpr);
    var lo = Infinity, hi = -Infinity;
    values.forEach(function (r) { r.forEach(function (v) { if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); } }); });
    if (!(hi > lo)) { hi = lo + 1; }
    var plotW = w - labelW - 10, cellW = plotW / Math.max(1, steps.length);
    ctx.font = '11px sans-serif';
    ctx.textBaseline = 'middle';
    layers.forEach(function (name, i) {
      ctx.fillStyle = '#333';
      ctx.fillText(name.length > 46 ? '…' + name.slice(-45) : name, 4, top + i * rowH + rowH / 2);
      values[i].forEach(function (v, j) {
        ctx.fillStyle = v === null ? '#ddd' : color((v - lo) / (hi - lo));
        ctx.fillRect(labelW + j * cellW, top + i * rowH, Math.ceil(cellW), rowH - 1);
      });
    });
    var y = top + layers.length * rowH + 8;
    for (var k = 0; k < 100; k++) { ctx.fillStyle = color(k / 99); ctx.fillRect(labelW + (k * plotW) / 100, y, Math.ceil(plotW / 100), 10); }
    ctx.fillStyle = '#333';
    ctx.fillText(lo.toFixed(1) + ' dB', labelW, y + 22);
    ctx.textAlign = 'right';
    ctx.fillText(hi.toFixed(1) + ' dB', labelW + plotW, y + 22);
    ctx.textAlign = 'left';
    ctx.fillText('steps ' + steps[0] + '–' + steps[steps.length - 1], 4, y + 5);
    cv.addEventListener('mousemove', function (ev) {
      var r = cv.getBoundingClientRect(), i = Math.floor((ev.clientY - r.top - top) / rowH), j = Math.floor((ev.clientX - r.left - labelW) / cellW);
      cv.title = i >= 0 && i < layers.length && j >= 0 && j < steps.length ? layers[i] + ' @ step ' + steps[j] + ': ' + fmt(values[i][j], 2) + ' dB' : '';
    });
    drawn.push(cv);
  }

  function table(parent, head, rows) {
    var tb = document.createElement('table');
    var tr = document.createElement('tr');
    head.forEach(function (h) { var th = document.createElement('th'); th.textContent = h; tr.appendChild(th); });
    tb.appendChild(tr);
    rows.forEach(function (r) {
      var tr = document.createElement('tr');
      r.forEach(function (c) { var td = document.createElement('td'); td.textContent = c; tr.appendChild(td); });
      tb.appendChild(tr);
    });
    parent.appendChild(tb);
  }

  var info = document.getElementById('info');
  function block(title) { var s = document.createElement('section'); var h = document.createElement('h2'); h.textContent = title; s.appendChild(h); info.appendChild(s); return s; }
  function pre(parent, text) { var p = document.createElement('pre'); p.textContent = text; parent.appendChild(p); }

  var mp = D.mixedPrecision;
  if (mp) {
    var s = block('Sensitivity ranking and mixed precision');
    var picked = {}; mp.projections.forEach(function (n) { picked[n] = true; });
    if (mp.baseline) pre(s, 'baseline val loss: all ternary ' + fmt(mp.baseline.ternary) + ', all FP ' + fmt(mp.baseline.fp));
    table(s, ['rank', 'projection', 'only FP Δ', 'only ternary Δ', 'kept in ' + mp.precision], mp.rows.map(function (r, i) {
      return [String(i + 1), r.name, fmt(r.fp_delta), fmt(r.ternary_delta), picked[r.name] ? 'yes' : ''];
    }));
  }
  if (D.profile && D.profile.steps > 0) {
    var p = D.profile, s2 = block('Profile (steps ' + p.fromStep + '–' + p.toStep + ', ' + fmt(p.stepMs / p.steps, 2) + ' ms a step)');
    var per = function (ms) { return fmt(ms / p.steps, 3) + ' ms'; };
    table(s2, ['op', 'phase', 'per step', 'share'], p.ops.slice(0, 20).map(function (r) { return [r.name, r.phase, per(r.ms), fmt((100 * r.ms) / p.stepMs, 1) + '%']; }));
    table(s2, ['kernel', 'phase', 'per step', 'calls/step'], p.kernels.slice(0, 20).map(function (r) { return [r.name, r.phase, per(r.ms), fmt(r.calls / p.steps, 1)]; }));
  }
  if (D.done) pre(block('Result'), 'step ' + D.done.step + ' | val loss ' + fmt(D.done.valLoss) + ' | ' + fmt(D.done.trainSeconds, 1) + ' s | ' + fmt(D.done.tokensPerSecond, 0) + ' tokens/s');
  if (D.config) {
    var det = document.createElement('details'), sum = document.createElement('summary');
    sum.textContent = 'run options and model shape (JSON)';
    det.appendChild(sum);
    block('Run config (' + (D.config.parameters / 1e6).toFixed(2) + 'M parameters)').appendChild(det);
    pre(det, JSON.stringify({ run: D.config.run, model: D.config.model }, null, 2));
  }
  if (D.samples.length > 0) {
    var s3 = block('Samples');
    D.samples.forEach(function (x) { var h = document.createElement('h3'); h.textContent = 'step ' + x.step; s3.appendChild(h); pre(s3, x.text); });
  }
  window.__report = { charts: drawn.length, ids: Array.prototype.map.call(document.querySelectorAll('section.chart'), function (s) { return s.dataset.chart; }) };
})();
`;
