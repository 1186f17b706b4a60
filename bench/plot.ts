// Throughput against p99 latency, one line per server through its concurrency levels, as a self-contained SVG.
import type { ServerRun } from './report';

const WIDTH = 720;
const HEIGHT = 440;
const MARGIN = { left: 70, right: 190, top: 30, bottom: 50 };
const COLOURS = ['#d62728', '#1f77b4', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Ticks at 1, 2 or 5 times a power of ten, about `count` of them from 0 to `max`. */
function ticks(max: number, count = 5): number[] {
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? raw;
  return Array.from({ length: Math.floor(max / step) + 1 }, (_, i) => i * step);
}

/** p99 latency (x, log scale) against throughput (y); each point labelled with its concurrency. */
export function renderPlot(runs: ServerRun[], title: string): string {
  const points = runs.flatMap((r) => r.levels.filter((l) => l.throughput > 0 && l.p99 > 0));
  const maxRps = Math.max(1, ...points.map((l) => l.throughput)) * 1.1;
  const [minMs, maxMs] = [Math.min(...points.map((l) => l.p99)) / 1.5, Math.max(...points.map((l) => l.p99)) * 1.5];
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (ms: number) => MARGIN.left + (plotW * Math.log(ms / minMs)) / Math.log(maxMs / minMs);
  const y = (rps: number) => MARGIN.top + plotH - (plotH * rps) / maxRps;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${MARGIN.left}" y="18" font-size="14">${escape(title)}</text>`,
  ];
  for (const t of ticks(maxRps)) {
    out.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${y(t)}" y2="${y(t)}" stroke="#ddd"/>`);
    out.push(`<text x="${MARGIN.left - 6}" y="${y(t) + 4}" text-anchor="end">${t}</text>`);
  }
  for (let decade = 10 ** Math.floor(Math.log10(minMs)); decade <= maxMs; decade *= 10) {
    for (const m of [1, 2, 5]) {
      const ms = decade * m;
      if (ms < minMs || ms > maxMs) continue;
      out.push(`<line x1="${x(ms)}" x2="${x(ms)}" y1="${MARGIN.top}" y2="${MARGIN.top + plotH}" stroke="#eee"/>`);
      out.push(`<text x="${x(ms)}" y="${MARGIN.top + plotH + 16}" text-anchor="middle">${ms}</text>`);
    }
  }
  out.push(`<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 10}" text-anchor="middle">p99 latency, ms (log scale)</text>`);
  out.push(`<text transform="translate(16 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">throughput, requests/s</text>`);
  runs.forEach((run, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const levels = run.levels.filter((l) => l.throughput > 0 && l.p99 > 0);
    out.push(`<polyline fill="none" stroke="${colour}" stroke-width="2" points="${levels.map((l) => `${x(l.p99).toFixed(1)},${y(l.throughput).toFixed(1)}`).join(' ')}"/>`);
    for (const l of levels) {
      out.push(`<circle cx="${x(l.p99).toFixed(1)}" cy="${y(l.throughput).toFixed(1)}" r="3.5" fill="${colour}"/>`);
      out.push(`<text x="${(x(l.p99) + 5).toFixed(1)}" y="${(y(l.throughput) - 5).toFixed(1)}" font-size="10" fill="${colour}">${l.concurrency}</text>`);
    }
    const ly = MARGIN.top + 10 + i * 18;
    out.push(`<line x1="${WIDTH - MARGIN.right + 12}" x2="${WIDTH - MARGIN.right + 32}" y1="${ly}" y2="${ly}" stroke="${colour}" stroke-width="2"/>`);
    out.push(`<text x="${WIDTH - MARGIN.right + 36}" y="${ly + 4}" font-size="11">${escape(run.key)}</text>`);
  });
  out.push(`<text x="${WIDTH - MARGIN.right + 12}" y="${MARGIN.top + 20 + runs.length * 18}" font-size="10" fill="#555">labels: concurrency</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
