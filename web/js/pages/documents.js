// Documents: upload many with a byte progress bar each, versions, download, delete.

import { html, useState } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { ErrorNote, Input, PagedList, Progress, bytes, useAction, useId, useLoad, usePaged, when } from '../ui.js';

// one row per file being sent: name, bytes sent, then done or the server's message
export function UploadRows({ rows }) {
  if (!rows.length) return null;
  return html`<ul class="uploads" aria-label="Uploads">
    ${rows.map((r) => html`<li key=${r.key}>
      <span class="name">${r.name}</span>
      <${Progress} label=${`Upload of ${r.name}`} done=${r.loaded} total=${r.total} />
      <span class="muted">${bytes(r.loaded)} of ${bytes(r.total)}</span>
      ${r.state === 'done' && html`<span class="status status-succeeded">uploaded</span>`}
      ${r.state === 'failed' && html`<span class="status status-failed" role="alert">failed: ${r.error}</span>`}
    </li>`)}
  </ul>`;
}

let uploadKey = 0;

export function useUploads() {
  const [rows, setRows] = useState([]);
  const update = (key, change) => setRows((all) => all.map((r) => (r.key === key ? { ...r, ...change } : r)));
  // send(file, path) → the server's answer, or null when it refused: the bytes go up resumably
  // (tus), then path is asked to take the finished upload
  const send = async (file, path) => {
    const key = ++uploadKey;
    setRows((all) => [...all, { key, name: file.name, loaded: 0, total: file.size, state: 'sending' }]);
    let uploadId = null;
    try {
      uploadId = await api.resumable(file, (loaded, total) => update(key, { loaded, total }));
      const result = await api.post(path, { upload_id: uploadId });
      setRows((all) => all.map((r) => (r.key === key ? { ...r, state: 'done', loaded: r.total } : r)));
      return result;
    } catch (error) {
      update(key, { state: 'failed', error: error.message });
      // refused (too large, say): the bytes it sent are of no further use
      if (uploadId) api.send('DELETE', `/api/uploads/${uploadId}`, { headers: { 'Tus-Resumable': '1.0.0' } }).catch(() => null);
      return null;
    }
  };
  return { rows, send, clear: () => setRows((all) => all.filter((r) => r.state === 'sending')) };
}

function Versions({ doc }) {
  const versions = useLoad(() => api.get(`/api/documents/${doc.id}/versions`), [doc.id, doc.version]);
  const items = versions.data ? (versions.data.items || versions.data) : [];
  return html`<div class="versions">
    <${ErrorNote} error=${versions.error} />
    <div class="scroll" tabindex="0" role="region" aria-label=${`Versions of ${doc.name}`}><table><caption>Versions of ${doc.name}</caption>
      <thead><tr><th scope="col">Version</th><th scope="col">Name</th><th scope="col">Size</th><th scope="col">Uploaded</th><th scope="col">File</th></tr></thead>
      <tbody>${items.map((v) => html`<tr key=${v.version}><td>${v.version}</td><td>${v.name}</td><td>${bytes(v.size)}</td><td>${when(v.created_at)}</td>
        <td><button type="button" class="small secondary" onClick=${() => api.download(`/api/documents/${doc.id}/content`, { version: v.version }, v.name)} aria-label=${`Download version ${v.version} of ${doc.name}`}>Download</button></td></tr>`)}
      </tbody></table></div>
  </div>`;
}

function DocumentRow({ doc, access, onChanged, onDeleted }) {
  const [open, setOpen] = useState(false);
  const { busy, error, run } = useAction();
  const inputId = useId('version');
  const uploads = useUploads();
  const newVersion = async (e) => {
    const file = e.currentTarget.files[0];
    e.currentTarget.value = '';
    if (!file) return;
    const result = await uploads.send(file, `/api/documents/${doc.id}/versions`);
    if (result) onChanged(result);
  };
  return html`<li class="card">
    <div class="row wrap spread">
      <div><strong>${doc.name}</strong> <span class="muted">v${doc.version} · ${bytes(doc.size)} · ${when(doc.updated_at)}</span></div>
      <div class="row wrap">
        <button type="button" class="small secondary" onClick=${() => run(() => api.download(`/api/documents/${doc.id}/content`, null, doc.name))} aria-label=${`Download ${doc.name}`}>Download</button>
        <button type="button" class="small secondary" aria-expanded=${open} onClick=${() => setOpen(!open)} aria-label=${`Versions of ${doc.name}`}>Versions</button>
        ${access.write && html`<label class="button small secondary" for=${inputId}>New version<input id=${inputId} class="visually-hidden" type="file" onChange=${newVersion} aria-label=${`New version of ${doc.name}`} /></label>`}
        ${access.write && html`<button type="button" class="small danger" disabled=${busy} onClick=${() => run(async () => { await api.del(`/api/documents/${doc.id}`); onDeleted(doc); })} aria-label=${`Delete ${doc.name}`}>Delete</button>`}
      </div>
    </div>
    <${ErrorNote} error=${error} />
    <${UploadRows} rows=${uploads.rows} />
    ${open && html`<${Versions} doc=${doc} />`}
  </li>`;
}

export function Documents({ project, access }) {
  const [q, setQ] = useState('');
  const paged = usePaged((cursor) => api.get(`/api/projects/${project.id}/documents`, { q, cursor, limit: 25 }), [project.id, q]);
  const uploads = useUploads();
  const pickId = useId('docs');
  const pick = async (e) => {
    const files = [...e.currentTarget.files];
    e.currentTarget.value = '';
    const results = await Promise.all(files.map((f) => uploads.send(f, `/api/projects/${project.id}/documents`)));
    if (results.some(Boolean)) paged.reload();
  };
  return html`<section aria-labelledby="docs-h">
    <h2 id="docs-h">Documents</h2>
    ${access.write && html`<div class="card">
      <label for=${pickId}>Upload documents (one or many)</label>
      <input id=${pickId} type="file" multiple onChange=${pick} />
      <${UploadRows} rows=${uploads.rows} />
    </div>`}
    <form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}><${Input} label="Search documents" type="search" value=${q} onInput=${setQ} /></form>
    <${PagedList} paged=${paged} empty="No documents yet.">
      <ul class="plain">${paged.items.map((d) => html`<${DocumentRow} key=${d.id} doc=${d} access=${access}
        onChanged=${(changed) => paged.setItems((all) => all.map((x) => (x.id === changed.id ? changed : x)))}
        onDeleted=${(gone) => paged.setItems((all) => all.filter((x) => x.id !== gone.id))} />`)}</ul>
    <//>
  </section>`;
}
