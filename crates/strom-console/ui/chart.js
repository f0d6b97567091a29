// A small SVG line chart: points [{t (ms), v}] over time, with a y axis of 4 ticks.

function fmtNum(v) {
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (Math.abs(v) >= 1e3) return (v / 1e3).toFixed(1) + 'k';
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

// hh:mm, or hh:mm:ss when the chart spans less than 10 minutes.
function fmtTime(t, span) {
  return new Date(t).toTimeString().slice(0, span < 600000 ? 8 : 5);
}

export function lineChart(points, { width = 640, height = 180, label = '', color = '#1f5f8b' } = {}) {
  const left = 48, right = 10, top = 18, bottom = 22;
  const w = width - left - right, h = height - top - bottom;
  // Scales to its container's width (viewBox), keeping its proportions.
  const svg = [`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" style="width:100%;height:auto;max-height:${height * 1.5}px" role="img" aria-label="${label}">`];
  svg.push(`<text x="${left}" y="12" font-size="11" fill="#6b7280">${label}</text>`);
  if (points.length === 0) {
    svg.push(`<text x="${left + w / 2}" y="${top + h / 2}" text-anchor="middle" font-size="12" fill="#6b7280">no samples yet</text></svg>`);
    return svg.join('');
  }
  const t0 = Math.min(...points.map(p => p.t)), t1 = Math.max(...points.map(p => p.t));
  const vmax = Math.max(1, ...points.map(p => p.v));
  const x = t => left + (t1 === t0 ? w : ((t - t0) / (t1 - t0)) * w);
  const y = v => top + h - (v / vmax) * h;
  for (let i = 0; i <= 4; i++) {
    const v = (vmax * i) / 4, yy = y(v);
    svg.push(`<line x1="${left}" x2="${left + w}" y1="${yy}" y2="${yy}" stroke="#e5e7eb"/>`);
    svg.push(`<text x="${left - 4}" y="${yy + 4}" text-anchor="end" font-size="10" fill="#6b7280">${fmtNum(v)}</text>`);
  }
  svg.push(`<text x="${left}" y="${height - 4}" font-size="10" fill="#6b7280">${fmtTime(t0, t1 - t0)}</text>`);
  svg.push(`<text x="${left + w}" y="${height - 4}" text-anchor="end" font-size="10" fill="#6b7280">${fmtTime(t1, t1 - t0)}</text>`);
  const d = points.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join('');
  svg.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"/>`);
  const last = points[points.length - 1];
  svg.push(`<circle cx="${x(last.t)}" cy="${y(last.v)}" r="3" fill="${color}"/>`);
  svg.push('</svg>');
  return svg.join('');
}
