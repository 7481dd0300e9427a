// A dataset's versions on its page: which one is shown (?version=N; the latest by default), the
// others to switch to, and a new version from one more file of the same instrument (an ingestion
// with version_of: the file goes up resumably, then its job is followed live).

import { html, useState } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { navigate } from '../router.js';
import { ErrorNote, Input, Link, Progress, Select, bytes, count, day, fmt, useAction, useId, useLoad } from '../ui.js';
import { JobRow } from './jobrow.js';

// the query that keeps a read on the version shown (none for the latest: reads default to it)
export const at = (d) => (d.version !== d.latest_version ? { version: d.version } : {});

export const versionHref = (id, version, latest) => (version === latest ? `/datasets/${id}` : `/datasets/${id}?version=${version}`);

function NewVersion({ dataset, onDone }) {
  const [file, setFile] = useState(null);
  const [sent, setSent] = useState(null);
  const [job, setJob] = useState(null);
  const { busy, error, run } = useAction();
  const pick = useId('version-file');
  const submit = (e) => {
    e.preventDefault();
    run(async () => {
      setSent(0);
      try {
        const upload = await api.resumable(file, setSent);
        const batch = await api.post(`/api/projects/${dataset.project_id}/ingestions`, { upload_ids: [upload], version_of: dataset.id });
        setJob(batch.jobs[0]);
        setFile(null);
      } finally {
        setSent(null);
      }
    });
  };
  return html`<form class="card" onSubmit=${submit} aria-label="New version">
    <h3>New version</h3>
    <p class="muted">The next file of the same instrument or sheet becomes version ${dataset.latest_version + 1}; every version stays as it was.</p>
    <div class="row wrap">
      <label for=${pick}>File for the new version</label>
      <input id=${pick} type="file" onChange=${(e) => setFile(e.currentTarget.files[0] || null)} />
    </div>
    ${sent !== null && file && html`<div><${Progress} label="Upload of the new version" done=${sent} total=${file.size} /> <span class="muted">${bytes(sent)} of ${bytes(file.size)}</span></div>`}
    <${ErrorNote} error=${error} />
    <button type="submit" disabled=${!file || busy}>${busy ? 'Uploading…' : 'Upload as a new version'}</button>
    ${job && html`<${JobRow} jobId=${job.id} label=${`New version from ${job.file}`} initial=${{ status: job.status }}
      onStatus=${(status) => { if (status === 'succeeded') onDone(); }} />`}
  </form>`;
}

const signed = (v) => (typeof v === 'number' ? `${v > 0 ? '+' : ''}${fmt(v)}` : '—');
const SHOWN_STATS = ['count', 'nulls', 'min', 'max', 'mean', 'std'];

function ChangedColumns({ schema }) {
  const items = [
    ...schema.added.map((c) => html`<li key=${`a-${c.name}`}><span class="added">added</span> ${c.name} (${c.type}${c.unit ? `, ${c.unit}` : ''})</li>`),
    ...schema.dropped.map((c) => html`<li key=${`d-${c.name}`}><span class="removed">dropped</span> ${c.name} (${c.type})</li>`),
    ...schema.retyped.map((c) => html`<li key=${`t-${c.name}`}><span class="changed">retyped</span> ${c.name}: ${c.before} → ${c.after}</li>`),
    ...schema.units_changed.map((c) => html`<li key=${`u-${c.name}`}><span class="changed">unit</span> ${c.name}: ${c.before || 'none'} → ${c.after || 'none'}</li>`),
  ];
  return items.length ? html`<ul aria-label="Column changes">${items}</ul>` : html`<p class="muted">The columns are the same.</p>`;
}

function RowSample({ caption, rows }) {
  if (!rows.length) return null;
  const columns = Object.keys(rows[0]);
  return html`<div class="scroll" tabindex="0" role="region" aria-label=${caption}><table><caption>${caption}</caption>
    <thead><tr>${columns.map((c) => html`<th scope="col" key=${c}>${c}</th>`)}</tr></thead>
    <tbody>${rows.map((r, i) => html`<tr key=${i}>${columns.map((c) => html`<td key=${c}>${fmt(r[c])}</td>`)}</tr>`)}</tbody>
  </table></div>`;
}

function KeyedRows({ rows }) {
  if (rows.error) return html`<p class="note error" role="alert"><strong>${rows.error.code}</strong>: ${rows.error.message}</p>`;
  const shown = (n, all) => (all > n ? ` (the first ${n})` : '');
  return html`<div>
    <p data-testid="row-counts">By ${rows.keys.join(', ')}: <strong>${count(rows.added.count)}</strong> rows added, <strong>${count(rows.removed.count)}</strong> removed, <strong>${count(rows.changed.count)}</strong> changed.</p>
    <${RowSample} caption=${`Rows added${shown(rows.added.rows.length, rows.added.count)}`} rows=${rows.added.rows} />
    <${RowSample} caption=${`Rows removed${shown(rows.removed.rows.length, rows.removed.count)}`} rows=${rows.removed.rows} />
    ${rows.changed.rows.length > 0 && html`<div class="scroll" tabindex="0" role="region" aria-label="Rows changed"><table><caption>Rows changed${shown(rows.changed.rows.length, rows.changed.count)}</caption>
      <thead><tr><th scope="col">${rows.keys.join(', ')}</th><th scope="col">Changes</th></tr></thead>
      <tbody>${rows.changed.rows.map((r, i) => html`<tr key=${i}><td>${Object.values(r.key).map(fmt).join(', ')}</td>
        <td>${Object.entries(r.changes).map(([c, [a, b]]) => `${c}: ${fmt(a)} → ${fmt(b)}`).join('; ')}</td></tr>`)}</tbody>
    </table></div>`}
  </div>`;
}

function DiffView({ diff }) {
  return html`<div class="diff" aria-label="Differences">
    <h3>Version ${diff.from_version.version} → version ${diff.to_version.version}</h3>
    <p data-testid="row-delta">Rows: ${count(diff.from_version.row_count)} → ${count(diff.to_version.row_count)} (${signed(diff.row_count_delta)})</p>
    <h4>Columns</h4>
    <${ChangedColumns} schema=${diff.schema} />
    <h4>Statistics</h4>
    <div class="scroll" tabindex="0" role="region" aria-label="Statistics changes"><table><caption>Statistics: before → after (change)</caption>
      <thead><tr><th scope="col">Column</th>${SHOWN_STATS.map((k) => html`<th scope="col" key=${k}>${k}</th>`)}</tr></thead>
      <tbody>${diff.stats.slice(0, 200).map((s) => html`<tr key=${s.column}><th scope="row">${s.column}</th>
        ${SHOWN_STATS.map((k) => html`<td key=${k}>${k in s.before || k in s.after ? `${fmt(s.before[k])} → ${fmt(s.after[k])}${k in s.delta && s.delta[k] !== 0 ? ` (${signed(s.delta[k])})` : ''}` : '—'}</td>`)}</tr>`)}</tbody>
    </table></div>
    <h4>Rows</h4>
    ${diff.rows ? html`<${KeyedRows} rows=${diff.rows} />` : html`<p class="muted">Name the key columns that identify a row to see which rows were added, removed or changed.</p>`}
  </div>`;
}

function Compare({ dataset, versions }) {
  const numbers = versions.map((v) => v.version);
  const [from, setFrom] = useState(String(numbers[numbers.length - 2] ?? numbers[0]));
  const [to, setTo] = useState(String(dataset.latest_version));
  const [keys, setKeys] = useState((dataset.key_columns || []).join(', '));
  const [diff, setDiff] = useState(null);
  const { busy, error, run } = useAction();
  const keep = useAction();
  const choices = numbers.map((n) => [String(n), `Version ${n}`]);
  const keyList = keys.split(',').map((k) => k.trim()).filter(Boolean);
  const submit = (e) => {
    e.preventDefault();
    run(async () => setDiff(await api.get(`/api/datasets/${dataset.id}/diff`, { from, to, ...(keyList.length ? { key: keyList.join(',') } : {}) })));
  };
  return html`<form class="card" onSubmit=${submit} aria-label="Compare versions">
    <h3>Compare versions</h3>
    <div class="row wrap">
      <${Select} label="From" value=${from} onChange=${setFrom} options=${choices} error=${error?.fieldError?.('query.from')} />
      <${Select} label="To" value=${to} onChange=${setTo} options=${choices} error=${error?.fieldError?.('query.to')} />
      <${Input} label="Key columns (comma separated)" value=${keys} onInput=${setKeys} hint="what identifies a row, e.g. id or time" error=${error?.fieldError?.('query.key')} />
    </div>
    <${ErrorNote} error=${error} />
    <${ErrorNote} error=${keep.error} />
    <div class="row wrap">
      <button type="submit" disabled=${busy}>${busy ? 'Comparing…' : 'Compare'}</button>
      <button type="button" class="secondary" disabled=${keep.busy} onClick=${() => keep.run(async () => { await api.patch(`/api/datasets/${dataset.id}`, { key_columns: keyList }); })}>Keep these key columns</button>
    </div>
    ${diff && html`<${DiffView} diff=${diff} />`}
  </form>`;
}

export function Versions({ dataset, onNewVersion }) {
  const d = dataset;
  const versions = useLoad(() => api.get(`/api/datasets/${d.id}/versions`), [d.id, d.latest_version]);
  const [adding, setAdding] = useState(false);
  return html`<section aria-labelledby="versions-h">
    <h2 id="versions-h">Versions</h2>
    ${d.version !== d.latest_version && html`<p class="note" role="status">You are looking at version ${d.version} of ${d.latest_version}.
      <${Link} href=${versionHref(d.id, d.latest_version, d.latest_version)}>Go to the latest<//></p>`}
    <${ErrorNote} error=${versions.error} />
    ${versions.data && html`<ol class="versions" aria-label="Versions of this dataset">${versions.data.map((v) => html`<li key=${v.version}>
      ${v.version === d.version
        ? html`<strong aria-current="page">Version ${v.version}</strong>`
        : html`<${Link} href=${versionHref(d.id, v.version, d.latest_version)}>Version ${v.version}<//>`}
      <span class="meta"> · ${v.source_name || '—'} · ${count(v.row_count)} rows · ${v.columns} columns · ${day(v.created_at)}${v.version === d.latest_version ? ' · latest' : ''}</span>
    </li>`)}</ol>`}
    ${versions.data && versions.data.length > 1 && html`<${Compare} dataset=${d} versions=${versions.data} />`}
    ${adding
      ? html`<${NewVersion} dataset=${d} onDone=${() => { navigate(`/datasets/${d.id}`); onNewVersion(); }} />`
      : html`<button type="button" class="secondary" onClick=${() => setAdding(true)}>Add a new version…</button>`}
  </section>`;
}
