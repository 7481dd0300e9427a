// A project's Query tab: SQL over the datasets (POST /api/sql), the project's tables and columns
// beside the editor (click to insert), Ctrl+Enter to run, results with types, row count and time,
// downloads as CSV or Parquet, "Save as dataset", and errors shown where the server says they are.

import { html, useEffect, useRef, useState } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { useLocation } from '../router.js';
import { ErrorNote, Input, Link, Loading, useAction, useLoad } from '../ui.js';
import { JobRow } from './jobrow.js';

const SHOWN_ROWS = 1000;
const PLAIN_NAME = /^[a-z_][a-z0-9_]*$/;
const ID = /^[0-9a-f]{24}$/;

// a column name as SQL needs it: plain names as they are, others in double quotes
const ident = (name) => (PLAIN_NAME.test(name) ? name : `"${name.replaceAll('"', '""')}"`);
const shortName = (table) => table.slice(table.indexOf('.') + 1); // the project part is implied here

function cell(value) {
  if (value === null || value === undefined) return '∅';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

// the offset in the text of a 1-based line and column
function offsetOf(text, { line, column }) {
  const lines = text.split('\n');
  let offset = 0;
  for (let i = 0; i < Math.min(line - 1, lines.length); i += 1) offset += lines[i].length + 1;
  return Math.min(text.length, offset + Math.max(0, column - 1));
}

function Tables({ tables, onInsert }) {
  const [filter, setFilter] = useState('');
  const wanted = filter.trim().toLowerCase();
  const shown = tables.filter((t) => !wanted || t.table_name.includes(wanted) || t.name.toLowerCase().includes(wanted)
    || t.columns.some((c) => c.name.toLowerCase().includes(wanted)));
  return html`<aside class="card tables" aria-labelledby="tables-h">
    <h3 id="tables-h">Tables</h3>
    <${Input} label="Filter tables and columns" type="search" value=${filter} onInput=${setFilter} />
    ${tables.length === 0 && html`<p class="muted">No datasets in this project yet.</p>`}
    <ul class="plain">${shown.slice(0, 200).map((t) => html`<li key=${t.id}>
      <button type="button" class="link" onClick=${() => onInsert(shortName(t.table_name))}
        aria-label=${`Insert table ${shortName(t.table_name)}`}>${shortName(t.table_name)}</button>
      <span class="muted"> ${t.rows.toLocaleString()} rows · ${t.name}</span>
      <details>
        <summary>Columns of ${shortName(t.table_name)}</summary>
        <ul class="plain columns">${t.columns.slice(0, 500).map((c) => html`<li key=${c.name}>
          <button type="button" class="link" onClick=${() => onInsert(ident(c.name))} aria-label=${`Insert column ${c.name}`}>${c.name}</button>
          <span class="muted"> ${c.type}${c.unit ? ` [${c.unit}]` : ''}</span></li>`)}
          ${t.columns.length > 500 && html`<li class="muted">…and ${(t.columns.length - 500).toLocaleString()} more columns (filter to find one)</li>`}
        </ul>
      </details></li>`)}</ul>
  </aside>`;
}

function Results({ answer }) {
  const rows = answer.rows.slice(0, SHOWN_ROWS);
  const summary = `${answer.row_count.toLocaleString()} row${answer.row_count === 1 ? '' : 's'}${answer.truncated ? ' (truncated at the limit)' : ''} · ${answer.elapsed_ms.toLocaleString()} ms`;
  return html`<section aria-labelledby="result-h">
    <h3 id="result-h">Result</h3>
    <p class="meta" role="status" data-testid="query-summary">${summary}${answer.rows.length > SHOWN_ROWS ? ` · the first ${SHOWN_ROWS} shown` : ''}</p>
    <div class="scroll" tabindex="0" role="region" aria-label="Query result"><table class="result"><caption class="visually-hidden">Query result</caption>
      <thead><tr>${answer.columns.map((c, i) => html`<th scope="col" key=${i}>${c.name}<br /><span class="muted type">${c.type}</span></th>`)}</tr></thead>
      <tbody>${rows.map((r, i) => html`<tr key=${i}>${r.map((v, j) => html`<td key=${j}>${cell(v)}</td>`)}</tr>`)}</tbody>
    </table></div>
  </section>`;
}

function SaveAsDataset({ project, sql }) {
  const [name, setName] = useState('');
  const [job, setJob] = useState(null);
  const { busy, error, run } = useAction();
  const save = (e) => {
    e.preventDefault();
    run(async () => setJob(await api.post(`/api/projects/${project.id}/datasets`, { from_sql: sql, name })));
  };
  return html`<form class="card" onSubmit=${save} aria-label="Save as dataset">
    <div class="row wrap">
      <${Input} label="New dataset's name" required value=${name} onInput=${setName} error=${error?.fieldError?.('name')} />
      <button type="submit" disabled=${busy || !name.trim() || !sql.trim()}>Save as dataset</button>
    </div>
    <${ErrorNote} error=${error} />
    ${job && html`<${JobRow} key=${job.id} jobId=${job.id} label=${`Saving “${name}”`} initial=${job}
      extra=${(done) => html`<p><${Link} href=${`/datasets/${done.result.dataset_id}`}>Open the new dataset<//></p>`} />`}
  </form>`;
}

export function Query({ project, access }) {
  const { query } = useLocation();
  const editor = useRef(null);
  const [sql, setSql] = useState('');
  const [answer, setAnswer] = useState(null);
  const [where, setWhere] = useState(null);
  const { busy, error, run } = useAction();
  const downloads = useAction();
  const tables = useLoad(async () => {
    if (!ID.test(project.id)) return [];
    const listed = await api.post('/api/sql', {
      sql: `SELECT id, table_name, name, columns, rows FROM datasets WHERE project_id = '${project.id}' ORDER BY table_name`,
      limit: 10000,
    });
    return listed.rows.map(([id, table_name, name, columns, rows]) => ({ id, table_name, name, columns, rows }));
  }, [project.id]);
  // "Query this dataset": start from its table
  const wanted = query.get('dataset');
  useEffect(() => {
    if (!wanted || !tables.data || sql) return;
    const table = tables.data.find((t) => t.id === wanted);
    if (table) setSql(`SELECT *\nFROM ${shortName(table.table_name)}\nLIMIT 100`);
  }, [wanted, tables.data]);

  const insert = (text) => {
    const area = editor.current;
    const start = area ? area.selectionStart : sql.length;
    const end = area ? area.selectionEnd : sql.length;
    const next = sql.slice(0, start) + text + sql.slice(end);
    setSql(next);
    requestAnimationFrame(() => { if (area) { area.focus(); area.setSelectionRange(start + text.length, start + text.length); } });
  };
  const execute = () => run(async () => {
    setWhere(null);
    try {
      setAnswer(await api.post('/api/sql', { sql, project_id: project.id }));
    } catch (e) {
      setAnswer(null);
      const position = e.problem?.position;
      if (position && editor.current) {
        setWhere(position);
        const at = offsetOf(sql, position);
        editor.current.focus();
        editor.current.setSelectionRange(at, Math.min(sql.length, at + 1));
      }
      throw e;
    }
  });
  const onKey = (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); if (sql.trim()) execute(); }
  };
  const download = (format, extension) => downloads.run(async () => {
    const response = await api.send('POST', '/api/sql', { json: { sql, project_id: project.id, format, limit: 1000000 } });
    api.saveBlob(await response.blob(), `query.${extension}`);
  });
  const line = where ? sql.split('\n')[where.line - 1] ?? '' : '';
  return html`<section aria-labelledby="query-h" class="query">
    <h2 id="query-h">Query</h2>
    <p class="muted">One read-only SQL statement (DuckDB's dialect) over the datasets you may read. This project's tables go by
      their own names; another project's are <code>project.table</code>; <code>datasets</code> lists them all.</p>
    <div class="query-grid">
      <div>
        <div class="field">
          <label for="sql-editor">SQL</label>
          <textarea id="sql-editor" ref=${editor} class="code sql" rows="10" spellcheck="false" value=${sql}
            aria-describedby="sql-hint" aria-invalid=${error ? 'true' : undefined}
            onInput=${(e) => setSql(e.currentTarget.value)} onKeyDown=${onKey}></textarea>
          <small id="sql-hint" class="hint">Ctrl+Enter runs the statement.</small>
        </div>
        <div class="row wrap">
          <button type="button" disabled=${busy || !sql.trim()} onClick=${execute}>Run</button>
          <button type="button" class="secondary" disabled=${downloads.busy || !sql.trim()} onClick=${() => download('csv', 'csv')}>Download CSV</button>
          <button type="button" class="secondary" disabled=${downloads.busy || !sql.trim()} onClick=${() => download('parquet', 'parquet')}>Download Parquet</button>
        </div>
        ${busy && html`<${Loading} what="Running" />`}
        <${ErrorNote} error=${error || downloads.error} />
        ${where && html`<div class="note error sql-where" data-testid="sql-position">
          <p>Line ${where.line}, column ${where.column}:</p>
          <pre class="code">${line}\n${' '.repeat(Math.max(0, where.column - 1))}^</pre></div>`}
        ${answer && html`<${Results} answer=${answer} />`}
        ${answer && access.write && html`<${SaveAsDataset} project=${project} sql=${sql} />`}
      </div>
      ${tables.loading ? html`<${Loading} what="Loading the tables" />`
        : tables.error ? html`<${ErrorNote} error=${tables.error} />`
        : html`<${Tables} tables=${tables.data} onInsert=${insert} />`}
    </div>
  </section>`;
}
