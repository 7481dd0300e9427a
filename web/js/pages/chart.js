// A dataset's interactive chart: x and one or more y from GET /api/datasets/{id}/series, drawn with
// uPlot (web/vendor/README.md says why). Every zoom or pan asks the server for that range at full
// detail: each of the chart's pixel columns gets the data's own min and max there, raw rows when
// zoomed in far enough. Drag to zoom, double-click to see it all, arrow keys or the buttons to pan,
// hover to read values; log axes; times in the lab's time zone (or as the instrument wrote them,
// when they carry none). The same points are offered as a table for screen readers.

import { html, useEffect, useRef, useState } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { Check, ErrorNote, Select } from '../ui.js';
import { at } from './versions.js';

const ROW = '_row';
const MAX_Y = 8;
// the columns of numbers a summary was kept for: the first 256 of numbers and times (workers/summary.py)
const SUMMARISED_TYPES = new Set(['integer', 'number', 'datetime', 'date']);
const NUMERIC_TYPES = new Set(['integer', 'number']);
export const summarisedColumns = (dataset) => dataset.schema.filter((c) => SUMMARISED_TYPES.has(c.type)).slice(0, 256)
  .filter((c) => NUMERIC_TYPES.has(c.type)).map((c) => c.name);
const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#e07b00', '#17becf', '#8c564b', '#e377c2'];

let uPlotPromise = null;
function loadUPlot() {
  if (!uPlotPromise) {
    const href = new URL('../../vendor/uplot.css', import.meta.url).href;
    if (!document.querySelector(`link[href="${href}"]`)) {
      const link = document.createElement('link');
      link.rel = 'stylesheet';
      link.href = href;
      document.head.append(link);
    }
    uPlotPromise = import('../../vendor/uplot.js').then((m) => m.default);
  }
  return uPlotPromise;
}

// the API's x values as the chart's numbers: seconds for times (a time without a zone is read as
// UTC and shown in UTC, so it stays as written), numbers as they are
const toChartX = (axis, v) => (v === null ? null : axis.type === 'time' ? Date.parse(axis.timezone ? v : `${v}Z`) / 1000 : v);
function toApiX(axis, v) {
  if (axis.type === 'row') return String(Math.round(v));
  if (axis.type !== 'time') return String(v);
  const iso = new Date(v * 1000).toISOString();
  return axis.timezone ? iso : iso.slice(0, -1);
}
const zoneOf = (axis) => (axis.timezone ? axis.lab_timezone : 'Etc/UTC');

function showX(axis, v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  if (axis.type === 'time') {
    const options = { timeZone: zoneOf(axis), year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3, hour12: false };
    return new Date(v * 1000).toLocaleString(undefined, options);
  }
  return axis.type === 'row' ? `row ${Math.round(v).toLocaleString()}` : Number(v.toPrecision(8)).toLocaleString();
}
const showY = (v) => (v === null || v === undefined ? '—' : Number(v.toPrecision(7)).toLocaleString());

// every series on one x: uPlot's join keeps a gap (null) a gap; an x repeated inside one series
// (the min and max of a group at the same x) is nudged up so neither value is lost
function table(answer) {
  const parts = answer.series.map((line) => {
    const xs = line.x.map((v) => toChartX(answer.x, v));
    for (let i = 1; i < xs.length; i += 1) {
      if (xs[i] <= xs[i - 1]) xs[i] = xs[i - 1] + Math.max(Math.abs(xs[i - 1]) * 1e-12, 1e-12);
    }
    return [xs, line.y];
  });
  return { parts, xs: parts.map((p) => p[0]) };
}

function colours() {
  const style = getComputedStyle(document.documentElement);
  return { text: style.getPropertyValue('--text').trim() || '#1b1f24', line: style.getPropertyValue('--line').trim() || '#c9ced6' };
}

function axisLabel(name, unit) {
  return unit ? `${name} [${unit}]`.replace(/ \[[^\]]*\] \[/, ' [') : name;
}

export function Chart({ dataset }) {
  const numbers = summarisedColumns(dataset);
  const [x, setX] = useState(null); // null: the dataset's own x (the server says which)
  const [chosen, setYs] = useState(null); // null: the server's choice (the first columns of numbers but x)
  const [view, setView] = useState(null); // null: the whole range; else [from, to] in chart numbers
  const [logX, setLogX] = useState(false);
  const [logY, setLogY] = useState(false);
  const [answer, setAnswer] = useState(null);
  const [state, setState] = useState('loading');
  const [error, setError] = useState(null);
  const [asTable, setAsTable] = useState(false);
  const box = useRef(null);
  const chart = useRef(null);
  const [dark, setDark] = useState(() => matchMedia('(prefers-color-scheme: dark)').matches);

  useEffect(() => {
    const media = matchMedia('(prefers-color-scheme: dark)');
    const changed = () => setDark(media.matches);
    media.addEventListener('change', changed);
    return () => media.removeEventListener('change', changed);
  }, []);

  // fetch the range at the chart's width (again after 202: the dataset's summary is being made)
  useEffect(() => {
    if (chosen && !chosen.length) return undefined;
    let gone = false;
    let retry = null;
    // three groups per CSS pixel (sharp on a dense screen too); up to 2 × points rows come raw
    const points = Math.max(200, Math.min(4000, Math.round((box.current?.clientWidth || 800) * 3)));
    const query = { y: chosen ? chosen.join(',') : undefined, points, x: x ?? undefined, ...at(dataset) };
    if (view && answer) {
      query.from = toApiX(answer.x, view[0]);
      query.to = toApiX(answer.x, view[1]);
    }
    const load = async () => {
      setState('loading');
      try {
        const body = await api.get(`/api/datasets/${dataset.id}/series`, query);
        if (gone) return;
        if (body && body.kind === 'dataset_summary') { // 202: the job making the summary
          setState('preparing');
          retry = setTimeout(load, 1500);
          return;
        }
        setAnswer(body);
        setError(null);
        setState('ready');
      } catch (e) {
        if (!gone) { setError(e); setState('failed'); }
      }
    };
    load();
    return () => { gone = true; clearTimeout(retry); };
  }, [dataset.id, dataset.version, x, chosen && chosen.join('\u0000'), view && view.join(',')]);

  // draw (again) whenever the points, the axes' kind or the colours change
  useEffect(() => {
    if (!answer || !box.current) return undefined;
    let gone = false;
    let plot = null;
    const resize = () => plot && plot.setSize({ width: box.current.clientWidth, height: 360 });
    loadUPlot().then((uPlot) => {
      if (gone) return;
      const axis = answer.x;
      const { text, line } = colours();
      const { parts } = table(answer);
      const data = parts.length === 1 ? parts[0] : uPlot.join(parts, parts.map((p) => p.map(() => 1)));
      const firstUnit = answer.series[0]?.unit ?? null;
      const scaleOf = (s) => ((s.unit ?? null) === firstUnit ? 'y' : 'y2');
      const usesY2 = answer.series.some((s) => scaleOf(s) === 'y2');
      const yDistr = logY ? 3 : 1;
      const opts = {
        width: box.current.clientWidth,
        height: 360,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), zoneOf(axis)),
        scales: { x: { time: axis.type === 'time', distr: logX && axis.type === 'number' ? 3 : 1 }, y: { distr: yDistr }, y2: { distr: yDistr } },
        series: [
          { label: axis.name ? axisLabel(axis.name, axis.unit) : 'Row', value: (u, v) => showX(axis, v) },
          ...answer.series.map((s, i) => ({
            label: axisLabel(s.name, s.unit), stroke: PALETTE[i % PALETTE.length], width: 1.25,
            spanGaps: false, scale: scaleOf(s), value: (u, v) => showY(v),
            points: { show: answer.source === 'raw' && s.x.length < 400 },
          })),
        ],
        axes: [
          { stroke: text, grid: { stroke: line, width: 1 }, ticks: { stroke: line }, label: axis.name ? axisLabel(axis.name, axis.unit) : 'Row number' },
          { stroke: text, grid: { stroke: line, width: 1 }, ticks: { stroke: line }, scale: 'y', label: axisLabel(answer.series.filter((s) => scaleOf(s) === 'y').map((s) => s.name).join(', '), firstUnit) },
          ...(usesY2 ? [{ stroke: text, grid: { show: false }, side: 1, scale: 'y2', label: answer.series.filter((s) => scaleOf(s) === 'y2').map((s) => axisLabel(s.name, s.unit)).join(', ') }] : []),
        ],
        cursor: {
          drag: { x: true, y: false, setScale: false },
          bind: { dblclick: () => () => { setView(null); return null; } },
        },
        hooks: {
          setSelect: [(u) => {
            if (u.select.width < 4) return;
            const from = u.posToVal(u.select.left, 'x');
            const to = u.posToVal(u.select.left + u.select.width, 'x');
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            setView([from, to]);
          }],
        },
      };
      box.current.replaceChildren();
      plot = new uPlot(opts, data, box.current);
      if (view) plot.setScale('x', { min: view[0], max: view[1] });
      chart.current = plot;
      box.current.chart = plot; // for the browser tests: what is on screen
      box.current.dataset.drawnAt = String(performance.now());
      window.addEventListener('resize', resize);
    });
    return () => {
      gone = true;
      window.removeEventListener('resize', resize);
      if (plot) plot.destroy();
    };
  }, [answer, logX, logY, dark]);

  const shown = () => (view ?? (answer ? answer.x.extent.map((v) => toChartX(answer.x, v)) : null));
  const pan = (share) => {
    const range = shown();
    if (!range || range[0] === null) return;
    const step = (range[1] - range[0]) * share;
    setView([range[0] + step, range[1] + step]);
  };
  const zoom = (factor) => {
    const range = shown();
    if (!range || range[0] === null) return;
    const middle = (range[0] + range[1]) / 2;
    const half = ((range[1] - range[0]) / 2) * factor;
    setView([middle - half, middle + half]);
  };
  const onKey = (e) => {
    const actions = { ArrowLeft: () => pan(-0.25), ArrowRight: () => pan(0.25), '+': () => zoom(0.5), '=': () => zoom(0.5), '-': () => zoom(2), Home: () => setView(null) };
    if (actions[e.key]) { e.preventDefault(); actions[e.key](); }
  };
  const ys = chosen ?? (answer ? answer.series.map((s) => s.name) : []);
  const toggleY = (name) => (on) => setYs(on ? [...ys, name].slice(0, MAX_Y) : ys.filter((n) => n !== name));
  const xOptions = [...new Set([...(dataset.sorted_columns || []), ...(answer?.x.name ? [answer.x.name] : [])])];
  const currentX = x ?? (answer ? answer.x.name ?? ROW : '');
  const axis = answer?.x;
  const range = axis ? (view ?? axis.extent.map((v) => toChartX(axis, v))) : null;
  const description = axis
    ? `Line chart of ${answer.series.map((s) => s.name).join(', ')} against ${axis.name ?? 'the row number'}, from ${showX(axis, range[0])} to ${showX(axis, range[1])}: ${answer.source === 'raw' ? 'every row' : "each pixel column's minimum and maximum"} (rows ${answer.rows[0].toLocaleString()}–${Math.max(answer.rows[0], answer.rows[1] - 1).toLocaleString()}).`
    : 'Chart loading';

  if (!numbers.length) return null;
  return html`<section aria-labelledby="chart-h" class="chart-section">
    <h2 id="chart-h">Chart</h2>
    <div class="row wrap chart-controls">
      <${Select} label="X axis" value=${currentX} onChange=${(v) => { setView(null); setX(v); }}
        options=${[...xOptions.map((n) => [n, n]), [ROW, 'Row number']]} />
      <fieldset class="chart-ys"><legend>Y axis</legend>
        ${numbers.slice(0, 200).map((n) => html`<${Check} key=${n} label=${n} checked=${ys.includes(n)} onChange=${toggleY(n)} />`)}
      </fieldset>
      <${Check} label="Log x" checked=${logX} onChange=${setLogX} />
      <${Check} label="Log y" checked=${logY} onChange=${setLogY} />
    </div>
    <div class="row wrap">
      <button type="button" class="secondary small" onClick=${() => pan(-0.5)}>← Earlier</button>
      <button type="button" class="secondary small" onClick=${() => zoom(0.5)}>Zoom in</button>
      <button type="button" class="secondary small" onClick=${() => zoom(2)}>Zoom out</button>
      <button type="button" class="secondary small" onClick=${() => pan(0.5)}>Later →</button>
      <button type="button" class="secondary small" disabled=${!view} onClick=${() => setView(null)}>Show all</button>
      <span class="meta" data-testid="chart-status" aria-live="polite">${state === 'preparing' ? 'Preparing the chart: a one-time summary of this dataset is being made…'
        : state === 'loading' ? 'Loading…' : answer ? `${answer.source === 'raw' ? 'Every row' : 'Min and max per pixel'} · rows ${answer.rows[0].toLocaleString()}–${answer.rows[1].toLocaleString()}` : ''}</span>
    </div>
    ${chosen && !chosen.length && html`<p class="muted">Choose at least one column for the y axis.</p>`}
    <${ErrorNote} error=${error} />
    <div class="chart" ref=${box} role="img" tabindex="0" aria-label=${description} aria-describedby="chart-help" onKeyDown=${onKey}
      data-state=${state} data-source=${answer?.source} data-rows=${answer ? answer.rows.join('-') : ''}></div>
    <p id="chart-help" class="hint">Drag across the chart to zoom in, double-click to see it all; with the chart focused, ← and → pan, + and − zoom, Home shows it all.</p>
    <button type="button" class="secondary small" aria-expanded=${asTable} onClick=${() => setAsTable(!asTable)}>${asTable ? 'Hide' : 'Show'} the chart's data as a table</button>
    ${asTable && answer && html`<${ChartTable} answer=${answer} />`}
  </section>`;
}

function ChartTable({ answer }) {
  const axis = answer.x;
  const rows = [];
  answer.series.forEach((line) => line.x.forEach((v, i) => rows.push([line.name, v, line.y[i]])));
  return html`<div class="scroll chart-table" tabindex="0" role="region" aria-label="Chart data"><table>
    <caption>Chart data: ${rows.length.toLocaleString()} points, ${answer.source === 'raw' ? 'every row in the range' : "each group's minimum and maximum, at the x where they occur"}</caption>
    <thead><tr><th scope="col">Series</th><th scope="col">${axis.name ?? 'Row'}</th><th scope="col">Value</th></tr></thead>
    <tbody>${rows.map((r, i) => html`<tr key=${i}><td>${r[0]}</td><td>${axis.type === 'time' ? showX(axis, toChartX(axis, r[1])) : r[1] ?? '—'}</td><td>${showY(r[2])}</td></tr>`)}</tbody>
  </table></div>`;
}
