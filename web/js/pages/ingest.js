// Ingestion: drop or pick many files, batch options and per-file manifest entries, then one live
// row per file/sheet. The rows are the project's ingestions as the API lists them, so they come
// back after a reload; each unfinished one follows its job's event stream.

import { html, useState } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { Check, ErrorNote, Input, Notice, PagedList, Progress, Select, bytes, useId, usePaged, when } from '../ui.js';
import { DatasetLinks, JobRow } from './jobrow.js';

const HEADER_MODES = [['file', 'From the file'], ['none', 'No header row'], ['custom', 'My own column names']];
const PROFILES = [['', 'Detect'], ['wind_tunnel', 'Wind tunnel export'], ['labview_lvm', 'LabVIEW measurement (.lvm)']];
const isSheet = (name) => /\.(xlsx|xlsm|xls)$/i.test(name);
const isText = (name) => /\.(csv|tsv|txt|dat|c|prn|asc|tab|lvm)$/i.test(name);
// files whose `variables` option picks arrays or groups: MATLAB, HDF5, NetCDF, TDMS
const isMat = (name) => /\.(mat|h5|hdf5|hdf|he5|nc|nc4|tdms)$/i.test(name);

function ManifestFields({ file, entry, onChange }) {
  const set = (key) => (value) => onChange({ ...entry, [key]: value });
  return html`<fieldset class="card">
    <legend>${file.name} <span class="muted">(${bytes(file.size)})</span></legend>
    <${Check} label=${`Store ${file.name} only, do not read it as a table`} checked=${entry.storeOnly} onChange=${set('storeOnly')} />
    ${!entry.storeOnly && html`<div class="row wrap">
      ${isSheet(file.name) && html`<${Input} label=${`Sheets of ${file.name} (comma separated, empty = all)`} value=${entry.sheets} onInput=${set('sheets')} />`}
      ${isText(file.name) && html`<${Input} label=${`First line of ${file.name}`} type="number" min="1" value=${entry.start} onInput=${set('start')} />`}
      ${isText(file.name) && html`<${Input} label=${`Last line of ${file.name}`} type="number" min="1" value=${entry.end} onInput=${set('end')} />`}
      ${isMat(file.name) && html`<${Input} label=${`Variables or groups of ${file.name} (comma separated)`} value=${entry.variables} onInput=${set('variables')} />`}
      <${Select} label=${`Profile for ${file.name}`} value=${entry.profile} onChange=${set('profile')} options=${PROFILES} />
    </div>`}
  </fieldset>`;
}

const list = (text) => text.split(',').map((s) => s.trim()).filter(Boolean);

function manifestOf(entry) {
  if (entry.storeOnly) return { ingest: false };
  const out = {};
  if (entry.sheets.trim()) out.sheets = list(entry.sheets);
  if (entry.start || entry.end) {
    out.parse_range = { start_line: Number(entry.start || 1), ...(entry.end ? { end_line: Number(entry.end) } : {}) };
  }
  if (entry.variables.trim()) out.variables = list(entry.variables);
  if (entry.profile) out.profile = entry.profile;
  return out;
}

const blankEntry = () => ({ storeOnly: false, sheets: '', start: '', end: '', variables: '', profile: '' });

// files of this page that are wholly uploaded: File → upload id (until used by an ingestion)
const finished = new WeakMap();

function IngestForm({ pid, onQueued }) {
  const [files, setFiles] = useState([]);
  const [entries, setEntries] = useState([]);
  const [options, setOptions] = useState({ dataset_type: '', tag: '', header_mode: 'file', custom_headers: '' });
  const [sending, setSending] = useState(null);
  const [error, setError] = useState(null);
  const [message, setMessage] = useState('');
  const [dragging, setDragging] = useState(false);
  const pickId = useId('ingest');
  const add = (picked) => {
    setFiles((f) => [...f, ...picked]);
    setEntries((e) => [...e, ...picked.map(blankEntry)]);
  };
  const set = (key) => (value) => setOptions((o) => ({ ...o, [key]: value }));
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    const body = { header_mode: options.header_mode, manifest: entries.map(manifestOf) };
    if (options.dataset_type) body.dataset_type = options.dataset_type;
    if (options.tag) body.tag = options.tag;
    if (options.header_mode === 'custom') body.custom_headers = list(options.custom_headers);
    const total = files.reduce((n, f) => n + f.size, 0);
    const sent = files.map(() => 0);
    setSending({ loaded: 0, total });
    try {
      // each file goes up resumably (tus), one after another; a file sent before a refusal (a
      // mistake in the options, say) is not sent again when the form is submitted again
      const uploadIds = [];
      for (const [i, file] of files.entries()) {
        if (!finished.has(file)) {
          finished.set(file, await api.resumable(file, (loaded) => {
            sent[i] = loaded;
            setSending({ loaded: sent.reduce((a, b) => a + b, 0), total });
          }));
        }
        sent[i] = file.size;
        uploadIds.push(finished.get(file));
      }
      setSending({ loaded: total, total });
      const batch = await api.post(`/api/projects/${pid}/ingestions`, { ...body, upload_ids: uploadIds });
      setMessage(`${batch.jobs.length} ingestion${batch.jobs.length === 1 ? '' : 's'} queued.`);
      for (const file of files) finished.delete(file);
      setFiles([]);
      setEntries([]);
      onQueued(batch);
    } catch (problem) {
      setError(problem);
    } finally {
      setSending(null);
    }
  };
  return html`<form class="card" onSubmit=${submit} aria-label="Ingest files">
    <h3>Ingest instrument files</h3>
    <div class=${`drop${dragging ? ' over' : ''}`}
      onDragOver=${(e) => { e.preventDefault(); setDragging(true); }}
      onDragLeave=${() => setDragging(false)}
      onDrop=${(e) => { e.preventDefault(); setDragging(false); add([...e.dataTransfer.files]); }}>
      <label for=${pickId}>Choose files, or drop them here (CSV, Excel, .dat, MATLAB, HDF5, NetCDF, TDMS, LabVIEW…)</label>
      <input id=${pickId} type="file" multiple onChange=${(e) => { add([...e.currentTarget.files]); e.currentTarget.value = ''; }} />
    </div>
    <div class="row wrap">
      <${Input} label="Dataset type" value=${options.dataset_type} onInput=${set('dataset_type')} hint="e.g. cfd, wind, flight" error=${error?.fieldError?.('dataset_type')} />
      <${Input} label="Tag" value=${options.tag} onInput=${set('tag')} error=${error?.fieldError?.('tag')} />
      <${Select} label="Header" value=${options.header_mode} onChange=${set('header_mode')} options=${HEADER_MODES} error=${error?.fieldError?.('header_mode')} />
      ${options.header_mode === 'custom' && html`<${Input} label="Column names (comma separated)" value=${options.custom_headers} onInput=${set('custom_headers')} error=${error?.fieldError?.('custom_headers')} />`}
    </div>
    ${files.map((file, i) => html`<div class="row wrap" key=${`${file.name}-${i}`}>
      <${ManifestFields} file=${file} entry=${entries[i]} onChange=${(entry) => setEntries((all) => all.map((x, j) => (j === i ? entry : x)))} />
      <button type="button" class="small secondary" onClick=${() => { setFiles((f) => f.filter((_, j) => j !== i)); setEntries((x) => x.filter((_, j) => j !== i)); }} aria-label=${`Remove ${file.name}`}>Remove</button>
    </div>`)}
    ${sending && html`<div><${Progress} label="Upload of the files" done=${sending.loaded} total=${sending.total} /> <span class="muted">${bytes(sending.loaded)} of ${bytes(sending.total)}</span></div>`}
    <${ErrorNote} error=${error} />
    <${Notice} text=${message} />
    <button type="submit" disabled=${!files.length || sending}>${sending ? 'Uploading…' : `Ingest ${files.length || ''} file${files.length === 1 ? '' : 's'}`}</button>
  </form>`;
}

function IngestionRow({ ingestion: ing, canChange }) {
  const label = `${ing.file.name}${ing.sheet ? ` — sheet ${ing.sheet}` : ''}`;
  if (!ing.job_id) {
    return html`<li><div class="job" data-status="stored"><div class="row wrap spread"><span class="name">${label}</span><span class="status">stored only</span></div>
      <p class="meta">${ing.reason || 'kept as a raw file'} · ${when(ing.created_at)}</p></div></li>`;
  }
  return html`<li><${JobRow} jobId=${ing.job_id} label=${label} canChange=${canChange}
    initial=${{ status: ing.status, progress: ing.progress, error: ing.error }}
    extra=${(job) => html`<${DatasetLinks} ids=${job.result?.dataset_ids || ing.dataset_ids} />`} /></li>`;
}

export function Ingest({ project, access }) {
  const paged = usePaged((cursor) => api.get(`/api/projects/${project.id}/ingestions`, { cursor, limit: 20 }), [project.id]);
  return html`<section aria-labelledby="ingest-h">
    <h2 id="ingest-h">Ingest</h2>
    ${access.write && html`<${IngestForm} pid=${project.id} onQueued=${paged.reload} />`}
    <h3>Ingestions</h3>
    <${PagedList} paged=${paged} empty="Nothing ingested yet.">
      <ul class="jobs" aria-label="Ingestions">${paged.items.map((ing) => html`<${IngestionRow} key=${ing.id} ingestion=${ing} canChange=${access.write} />`)}</ul>
    <//>
  </section>`;
}
