// chart.js: a small SVG line chart, one line per instance; no library (a chart of a few
// minutes of points needs none).
import { h } from './ui.js';

const W = 300, H = 120, PAD = 22;
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];

// series: {name: [[t, v], ...]}; fmt formats an axis value.
export function lineChart(title, series, fmt, windowMs) {
  const names = Object.keys(series).sort();
  const all = names.flatMap((n) => series[n]);
  const now = Date.now(), t0 = now - windowMs;
  const max = Math.max(1e-9, ...all.map((p) => p[1]));
  const x = (t) => PAD + ((W - PAD - 4) * (t - t0)) / windowMs;
  const y = (v) => H - 14 - ((H - 24) * v) / max;
  const svg = h('svg', { svg: true, viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${title}: ${names.length} instances` },
    h('line', { svg: true, class: 'axis', x1: PAD, y1: H - 14, x2: W - 4, y2: H - 14 }),
    h('text', { svg: true, x: 2, y: 10 }, fmt(max)),
    h('text', { svg: true, x: 2, y: H - 2 }, `${Math.round(windowMs / 60000)} min`),
    names.map((n, i) => h('polyline', {
      svg: true, stroke: COLORS[i % COLORS.length],
      points: series[n].filter((p) => p[0] >= t0).map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' '),
    })));
  const last = names.map((n, i) => {
    const p = series[n][series[n].length - 1];
    const sw = h('span', {}, '■ ');
    sw.style.color = COLORS[i % COLORS.length];
    return h('span', {}, sw, `${n}: ${p ? fmt(p[1]) : '–'} `);
  });
  return h('figure', { class: 'chart card' }, h('figcaption', {}, title), svg, h('div', { class: 'muted' }, last));
}
