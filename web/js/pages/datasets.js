// Datasets (list, page with schema, statistics, rows, downloads) and plots (form from the schema,
// live status, the image when ready, the spec for reproducibility).

import { html, useEffect, useState } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { ErrorNote, Input, Link, Loading, Moment, PagedList, Select, bytes, count, day, fmt, useAction, useLoad, usePaged } from '../ui.js';
import { Chart, summarisedColumns } from './chart.js';
import { JobRow } from './jobrow.js';
import { Lineage } from './lineage.js';
import { Publishing } from './publishing.js';
import { Versions, at } from './versions.js';

const KINDS = [['line', 'Line'], ['scatter', 'Scatter'], ['histogram', 'Histogram'], ['bar', 'Bar'], ['box', 'Box'], ['heatmap', 'Heatmap']];
const QUANTILE_KEYS = ['p01', 'p05', 'p25', 'p50', 'median', 'p75', 'p95', 'p99'];

export function DatasetList({ project }) {
  const [filters, setFilters] = useState({ dataset_type: '', tag: '' });
  const paged = usePaged((cursor) => api.get(`/api/projects/${project.id}/datasets`, { ...filters, cursor, limit: 25 }), [project.id, filters.dataset_type, filters.tag]);
  const set = (key) => (value) => setFilters((f) => ({ ...f, [key]: value }));
  return html`<section aria-labelledby="datasets-h">
    <h2 id="datasets-h">Datasets</h2>
    <form class="filters" role="search" aria-label="Filter datasets" onSubmit=${(e) => e.preventDefault()}>
      <${Input} label="Dataset type" value=${filters.dataset_type} onInput=${set('dataset_type')} />
      <${Input} label="Tag" value=${filters.tag} onInput=${set('tag')} />
    </form>
    <${PagedList} paged=${paged} empty="No datasets yet: ingest files to make some.">
      <div class="scroll" tabindex="0" role="region" aria-label="Datasets table"><table><caption class="visually-hidden">Datasets</caption>
        <thead><tr><th scope="col">Name</th><th scope="col">Type</th><th scope="col">Tag</th><th scope="col">Rows</th><th scope="col">Columns</th><th scope="col">Created</th></tr></thead>
        <tbody>${paged.items.map((d) => html`<tr key=${d.id}>
          <td><${Link} href=${`/datasets/${d.id}`}>${d.name}${d.sheet ? ` — ${d.sheet}` : ''}<//></td>
          <td>${d.dataset_type || '—'}</td><td>${d.tag || '—'}</td><td>${fmt(d.row_count)}</td><td>${d.columns}</td><td>${day(d.created_at)}</td></tr>`)}
        </tbody></table></div>
    <//>
  </section>`;
}

const COLUMN_PAGE = 100; // columns of the statistics table at a time
const ROW_COLUMNS = 40; // columns of the rows tables at a time

// a window onto a list: filter by text, page through it
function useWindow(items, size, text = (x) => x) {
  const [filter, setFilter] = useState('');
  const [start, setStart] = useState(0);
  const wanted = filter.trim().toLowerCase();
  const matching = wanted ? items.filter((x) => text(x).toLowerCase().includes(wanted)) : items;
  const from = Math.min(start, Math.max(0, matching.length - 1));
  return {
    filter, setFilter: (v) => { setFilter(v); setStart(0); }, matching, from,
    shown: matching.slice(from, from + size),
    previous: from > 0 ? () => setStart(Math.max(0, from - size)) : null,
    next: from + size < matching.length ? () => setStart(from + size) : null,
  };
}

function WindowButtons({ view, size, what }) {
  if (!view.previous && !view.next) return null;
  const end = Math.min(view.from + size, view.matching.length);
  return html`<div class="row wrap">
    <button type="button" class="secondary small" disabled=${!view.previous} onClick=${view.previous}>Previous ${what}</button>
    <span class="meta">${what} ${(view.from + 1).toLocaleString()}–${end.toLocaleString()} of ${view.matching.length.toLocaleString()}</span>
    <button type="button" class="secondary small" disabled=${!view.next} onClick=${view.next}>Next ${what}</button>
  </div>`;
}

const NUMERIC_TYPES = new Set(['integer', 'number']);
const SPARK_POINTS = 40;

// each shown column of numbers over the rows: its min and max per fortieth of the dataset, from the
// summary kept at ingestion (one request for the page of columns)
function useShapes(dataset, names) {
  const summarised = new Set(summarisedColumns(dataset));
  const wanted = names.filter((n) => summarised.has(n)).slice(0, 40);
  const [shapes, setShapes] = useState({});
  useEffect(() => {
    if (!wanted.length || dataset.row_count < 2) return undefined;
    let gone = false;
    api.get(`/api/datasets/${dataset.id}/series`, { x: '_row', y: wanted.join(','), points: SPARK_POINTS, ...at(dataset) })
      .then((body) => {
        if (gone || !body || !body.series) return; // 202: the summary is still being made
        setShapes(Object.fromEntries(body.series.map((s) => [s.name, s.y])));
      }, () => {}); // a column without a summary simply has no sparkline
    return () => { gone = true; };
  }, [dataset.id, dataset.version, wanted.join('\u0000')]);
  return shapes;
}

function Sparkline({ values }) {
  const numbers = (values || []).filter((v) => v !== null);
  if (numbers.length < 2) return '—';
  const low = Math.min(...numbers);
  const high = Math.max(...numbers);
  const span = high - low || 1;
  const step = 96 / Math.max(1, values.length - 1);
  let path = '';
  let pen = false;
  values.forEach((v, i) => {
    if (v === null) { pen = false; return; }
    path += `${pen ? 'L' : 'M'}${(i * step).toFixed(1)} ${(18 - ((v - low) / span) * 16).toFixed(1)}`;
    pen = true;
  });
  return html`<svg class="spark" viewBox="0 0 96 20" width="96" height="20" aria-hidden="true" focusable="false"><path d=${path} /></svg>`;
}

function StatsTable({ dataset }) {
  const view = useWindow(dataset.schema, COLUMN_PAGE, (c) => c.name);
  const shapes = useShapes(dataset, view.shown.map((c) => c.name));
  return html`<div>
    ${dataset.schema.length > COLUMN_PAGE && html`<form class="filters" role="search" aria-label="Find columns" onSubmit=${(e) => e.preventDefault()}>
      <${Input} label="Filter columns" type="search" value=${view.filter} onInput=${view.setFilter} />
    </form>`}
    <${WindowButtons} view=${view} size=${COLUMN_PAGE} what="columns" />
    <div class="scroll" tabindex="0" role="region" aria-label="Statistics table"><table><caption>Statistics per column</caption>
    <thead><tr><th scope="col">Column</th><th scope="col">Type</th><th scope="col">Unit</th><th scope="col">Count</th><th scope="col">Nulls</th><th scope="col">Min</th><th scope="col">Max</th><th scope="col">Mean</th><th scope="col">Std</th><th scope="col">Quantiles</th><th scope="col">Distinct / top</th><th scope="col">Over the rows</th></tr></thead>
    <tbody>${view.shown.map((c) => {
      const s = dataset.stats[c.name] || {};
      const quantiles = QUANTILE_KEYS.filter((k) => k in s).map((k) => `${k} ${fmt(s[k])}`).join(', ');
      const top = s.top ? `${fmt(s.distinct)} distinct; ${s.top.slice(0, 3).map((t) => `${t.value} (${t.count})`).join(', ')}` : (s.kind === 'bool' ? `true ${s.true}, false ${s.false}` : '—');
      return html`<tr key=${c.name}><th scope="row">${c.name}</th><td>${c.type}</td><td>${c.unit || '—'}</td><td>${fmt(s.count)}</td><td>${fmt(s.nulls)}</td>
        <td>${fmt(s.min)}</td><td>${fmt(s.max)}</td><td>${fmt(s.mean)}</td><td>${fmt(s.std)}</td><td>${quantiles || '—'}</td><td>${top}</td>
        <td>${NUMERIC_TYPES.has(c.type) ? html`<${Sparkline} values=${shapes[c.name]} />` : '—'}</td></tr>`;
    })}</tbody></table></div>
    ${view.matching.length === 0 && html`<p class="muted">No column matches.</p>`}
  </div>`;
}

function RowsTable({ caption, columns, rows }) {
  return html`<div class="scroll" tabindex="0" role="region" aria-label=${caption}><table><caption>${caption}</caption>
    <thead><tr>${columns.map((c) => html`<th scope="col" key=${c}>${c}</th>`)}</tr></thead>
    <tbody>${rows.map((r, i) => html`<tr key=${i}>${columns.map((c) => html`<td key=${c}>${fmt(r[c])}</td>`)}</tr>`)}</tbody>
  </table></div>`;
}

function PagedRows({ dataset }) {
  const size = 50;
  const [offset, setOffset] = useState(0);
  const columns = useWindow(dataset.schema.map((c) => c.name), ROW_COLUMNS);
  const wide = dataset.schema.length > ROW_COLUMNS;
  const names = columns.shown;
  const rows = useLoad(() => api.get(`/api/datasets/${dataset.id}/rows`, { offset, limit: size, columns: wide ? names.join(',') : null, ...at(dataset) }), [dataset.id, dataset.version, offset, names.join('\u0000')]);
  const data = rows.data;
  return html`<section aria-labelledby="rows-h">
    <h2 id="rows-h">Rows</h2>
    ${wide && html`<form class="filters" role="search" aria-label="Filter the rows' columns" onSubmit=${(e) => e.preventDefault()}>
      <${Input} label="Columns to show (filter)" type="search" value=${columns.filter} onInput=${columns.setFilter} />
    </form>`}
    <${WindowButtons} view=${columns} size=${ROW_COLUMNS} what="columns" />
    <${ErrorNote} error=${rows.error} />
    ${data
      ? html`<${RowsTable} caption=${`Rows ${data.total ? (offset + 1).toLocaleString() : 0}–${Math.min(offset + size, data.total).toLocaleString()} of ${data.total.toLocaleString()}`} columns=${data.columns} rows=${data.rows} />`
      : offset === 0 && dataset.sample.length > 0 && !rows.error
        ? html`<${RowsTable} caption=${`Rows 1–${dataset.sample.length} of ${dataset.row_count.toLocaleString()} (loading more)`} columns=${names} rows=${dataset.sample} />`
        : rows.loading && html`<${Loading} />`}
    <div class="row">
      <button type="button" class="secondary" disabled=${offset === 0} onClick=${() => setOffset(Math.max(0, offset - size))}>Previous rows</button>
      <button type="button" class="secondary" disabled=${!data || offset + size >= data.total} onClick=${() => setOffset(offset + size)}>Next rows</button>
    </div>
  </section>`;
}

// what the file said about itself: the header evidence (which line held the names and the units),
// preamble and title lines, and an instrument's own metadata (HDF5 or TDMS attributes)
function MetaValue({ value, depth = 0 }) {
  if (value === null || value === undefined || value === '') return '—';
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v !== 'object' || v === null)) {
      return value.length > 3 || value.some((v) => String(v).length > 40)
        ? html`<pre class="preamble">${value.map(String).join('\n')}</pre>`
        : value.map(String).join(', ');
    }
    return html`<ol>${value.slice(0, 100).map((v, i) => html`<li key=${i}><${MetaValue} value=${v} depth=${depth + 1} /></li>`)}</ol>`;
  }
  if (typeof value === 'object') {
    if (depth > 3) return JSON.stringify(value);
    return html`<dl class="pairs">${Object.entries(value).slice(0, 200).map(([k, v]) => html`<div key=${k}><dt>${k.replace(/_/g, ' ')}</dt><dd><${MetaValue} value=${v} depth=${depth + 1} /></dd></div>`)}</dl>`;
  }
  return typeof value === 'number' ? fmt(value) : String(value);
}

function Metadata({ dataset }) {
  const entries = Object.entries(dataset.metadata || {}).filter(([, v]) => v !== null && v !== undefined && !(Array.isArray(v) && !v.length));
  const provenance = dataset.provenance || {};
  return html`<section aria-labelledby="metadata-h">
    <h2 id="metadata-h">Metadata</h2>
    ${entries.length
      ? html`<${MetaValue} value=${Object.fromEntries(entries)} />`
      : html`<p class="muted">The file said nothing about itself beyond its columns.</p>`}
    <details><summary>How it was made</summary>
      <${MetaValue} value=${{ source_file: `${dataset.source.name} (${bytes(dataset.source.size)}, sha256 ${dataset.source.sha256.slice(0, 16)}…)`, ...provenance }} />
    </details>
  </section>`;
}

export function PlotImage({ viz }) {
  const [src, setSrc] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let url = null;
    let gone = false;
    api.blobUrl(`/api/visualizations/${viz.id}/image`, { format: viz.spec.format })
      .then((u) => { url = u; if (!gone) setSrc(u); }, setError);
    return () => { gone = true; if (url) URL.revokeObjectURL(url); };
  }, [viz.id]);
  if (error) return html`<${ErrorNote} error=${error} />`;
  if (!src) return html`<${Loading} what="Loading the image" />`;
  const columns = [viz.spec.x, ...(viz.spec.y || [])].filter(Boolean).join(', ');
  const alt = `${viz.spec.kind} plot${viz.spec.title ? `: ${viz.spec.title}` : ''}${columns ? ` of ${columns}` : ''}`;
  return html`<img class="plot" src=${src} alt=${alt} />`;
}

function PlotCard({ viz, showDataset = false }) {
  const [done, setDone] = useState(viz.status === 'succeeded');
  return html`<li class="card plot-card">
    ${showDataset && viz.dataset_id && html`<p><${Link} href=${`/datasets/${viz.dataset_id}`}>Open the plotted dataset<//></p>`}
    <${JobRow} jobId=${viz.job_id} label=${`${viz.spec.kind} plot${viz.spec.title ? ` “${viz.spec.title}”` : ''}`}
      initial=${{ status: viz.status, error: viz.error }}
      onStatus=${(status) => setDone(status === 'succeeded')} />
    ${done && html`<${PlotImage} viz=${viz} />`}
    ${viz.version && html`<p class="meta">Drawn from version ${viz.version}${viz.newer_version ? html` · <span class="newer">version ${viz.newer_version} is newer</span>` : ''}</p>`}
    <details><summary>Spec (for reproducing this plot)</summary><pre class="code">${JSON.stringify({ dataset_id: viz.dataset_id, version: viz.version, dataset_version: viz.dataset_version, spec: viz.spec, library_versions: viz.library_versions }, null, 2)}</pre></details>
  </li>`;
}

function PlotForm({ dataset, onQueued }) {
  const columns = dataset.schema.map((c) => [c.name, `${c.name}${c.unit ? ` [${c.unit}]` : ''} (${c.type})`]);
  const [spec, setSpec] = useState({ kind: 'line', x: columns[0]?.[0] || '', y: columns[1]?.[0] || columns[0]?.[0] || '', group_by: '', bins: 50, title: '', width: 1000, height: 600, format: 'png' });
  const { busy, error, run } = useAction();
  const set = (key) => (value) => setSpec((s) => ({ ...s, [key]: value }));
  const histogram = spec.kind === 'histogram';
  const submit = (e) => {
    e.preventDefault();
    const body = {
      kind: spec.kind, title: spec.title, width: Number(spec.width), height: Number(spec.height), format: spec.format,
      // a histogram counts the values of its y columns; the other kinds draw y against x
      ...(histogram ? { y: [spec.x], bins: Number(spec.bins) } : { x: spec.x || null, y: spec.y ? [spec.y] : [] }),
      ...(spec.group_by ? { group_by: spec.group_by } : {}),
    };
    run(async () => onQueued(await api.post(`/api/datasets/${dataset.id}/visualizations`, body, at(dataset))));
  };
  const none = [['', '—']];
  return html`<form class="card" onSubmit=${submit} aria-label="New plot">
    <h3>New plot</h3>
    <div class="row wrap">
      <${Select} label="Kind" value=${spec.kind} onChange=${set('kind')} options=${KINDS} error=${error?.fieldError?.('kind')} />
      <${Select} label=${histogram ? 'Column' : 'X'} value=${spec.x} onChange=${set('x')} options=${columns} error=${error?.fieldError?.('x')} />
      ${!histogram && html`<${Select} label="Y" value=${spec.y} onChange=${set('y')} options=${[...none, ...columns]} error=${error?.fieldError?.('y')} />`}
      <${Select} label="Group by" value=${spec.group_by} onChange=${set('group_by')} options=${[...none, ...columns]} error=${error?.fieldError?.('group_by')} />
      ${histogram && html`<${Input} label="Bins" type="number" min="1" value=${spec.bins} onInput=${set('bins')} error=${error?.fieldError?.('bins')} />`}
      <${Input} label="Title" value=${spec.title} onInput=${set('title')} error=${error?.fieldError?.('title')} />
      <${Input} label="Width (px)" type="number" value=${spec.width} onInput=${set('width')} error=${error?.fieldError?.('width')} />
      <${Input} label="Height (px)" type="number" value=${spec.height} onInput=${set('height')} error=${error?.fieldError?.('height')} />
      <${Select} label="Format" value=${spec.format} onChange=${set('format')} options=${[['png', 'PNG'], ['svg', 'SVG']]} />
    </div>
    <${ErrorNote} error=${error} />
    <button type="submit" disabled=${busy}>Make plot</button>
  </form>`;
}

export function DatasetPage({ id, version }) {
  const dataset = useLoad(() => api.get(`/api/datasets/${id}`, version ? { version } : {}), [id, version]);
  const plots = usePaged(
    (cursor) => (dataset.data ? api.get(`/api/projects/${dataset.data.project_id}/visualizations`, { dataset_id: id, cursor, limit: 10 }) : Promise.resolve({ items: [] })),
    [id, dataset.data?.project_id],
  );
  const downloads = useAction();
  if (dataset.loading) return html`<${Loading} />`;
  if (dataset.error) return html`<section><h1>Dataset</h1><${ErrorNote} error=${dataset.error} /></section>`;
  const d = dataset.data;
  const v = at(d);
  return html`<section>
    <p class="crumbs"><${Link} href=${`/projects/${d.project_id}/datasets`}>Project datasets<//> /</p>
    <h1>${d.name}${d.sheet && !d.name.endsWith(d.sheet) ? ` — ${d.sheet}` : ''}${d.latest_version > 1 ? html` <span class="version-badge">version ${d.version}</span>` : ''}</h1>
    <p class="meta">${count(d.row_count)} rows · ${count(d.schema.length)} columns · ${d.dataset_type || 'no type'} · ${d.tag || 'no tag'} · from ${d.source.name} (${bytes(d.source.size)}; ${bytes(d.parquet_bytes)} stored) · made <${Moment} iso=${d.created_at} /></p>
    <div class="row wrap">
      <button type="button" class="secondary" onClick=${() => downloads.run(() => api.download(`/api/datasets/${id}/download`, { format: 'parquet', ...v }, `${d.name}.parquet`))}>Download Parquet</button>
      <button type="button" class="secondary" onClick=${() => downloads.run(() => api.download(`/api/datasets/${id}/download`, { format: 'csv', ...v }, `${d.name}.csv`))}>Download CSV</button>
      <button type="button" class="secondary" onClick=${() => downloads.run(() => api.download(`/api/datasets/${id}/raw`, v, d.source.name))}>Download raw file</button>
      <${Link} class="button secondary" href=${`/projects/${d.project_id}/query?dataset=${id}`}>Query this dataset<//>
    </div>
    <${ErrorNote} error=${downloads.error} />
    ${d.row_count > 0 && html`<${Chart} dataset=${d} />`}
    <h2>Columns</h2>
    <${StatsTable} dataset=${d} />
    ${d.warnings.length > 0 && html`<h2>Parse warnings</h2><ul>${d.warnings.map((w, i) => html`<li key=${i}>${w.message || JSON.stringify(w)}</li>`)}</ul>`}
    <${Versions} dataset=${d} onNewVersion=${dataset.reload} />
    <${Lineage} dataset=${d} />
    <${Publishing} dataset=${d} onChange=${dataset.reload} />
    <${Metadata} dataset=${d} />
    <${PagedRows} dataset=${d} />
    <h2>Plots</h2>
    <${PlotForm} dataset=${d} onQueued=${(viz) => plots.setItems((all) => [viz, ...all])} />
    <${PagedList} paged=${plots} empty="No plots of this dataset yet.">
      <ul class="plain plots">${plots.items.map((v) => html`<${PlotCard} key=${v.id} viz=${v} />`)}</ul>
    <//>
  </section>`;
}

export function PlotList({ project }) {
  const paged = usePaged((cursor) => api.get(`/api/projects/${project.id}/visualizations`, { cursor, limit: 10 }), [project.id]);
  return html`<section aria-labelledby="plots-h">
    <h2 id="plots-h">Plots</h2>
    <p class="muted">Make a plot from a dataset's page.</p>
    <${PagedList} paged=${paged} empty="No plots yet.">
      <ul class="plain plots">${paged.items.map((v) => html`<${PlotCard} key=${v.id} viz=${v} showDataset=${true} />`)}</ul>
    <//>
  </section>`;
}
