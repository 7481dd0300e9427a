// Records: the API's filters, sort, cursor paging, create/edit with a JSON editor for `data`
// (the server's field errors shown next to the field), CSV/JSONL export.

import { html, useState } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { ErrorNote, Input, PagedList, Select, TextArea, day, useAction, usePaged } from '../ui.js';

const SORTS = [
  ['-created_at', 'Newest first'], ['created_at', 'Oldest first'], ['-updated_at', 'Recently changed'],
  ['title', 'Title A–Z'], ['-title', 'Title Z–A'], ['kind', 'Kind'],
];

function RecordForm({ pid, record, onSaved, onCancel }) {
  const [form, setForm] = useState({
    kind: record?.kind || '', title: record?.title || '', tags: (record?.tags || []).join(', '),
    data: JSON.stringify(record?.data || {}, null, 2),
  });
  const [jsonError, setJsonError] = useState(null);
  const { busy, error, run } = useAction();
  const set = (key) => (value) => setForm((f) => ({ ...f, [key]: value }));
  const submit = (e) => {
    e.preventDefault();
    let data;
    try {
      data = JSON.parse(form.data || '{}');
      setJsonError(null);
    } catch (problem) {
      setJsonError(`not valid JSON: ${problem.message}`);
      return;
    }
    const body = { kind: form.kind, title: form.title, tags: form.tags.split(',').map((t) => t.trim()).filter(Boolean), data };
    run(async () => onSaved(record ? await api.patch(`/api/records/${record.id}`, body) : await api.post(`/api/projects/${pid}/records`, body)));
  };
  const dataError = jsonError || error?.fieldError?.('data');
  return html`<form class="card" onSubmit=${submit} aria-label=${record ? `Edit record ${record.title}` : 'New record'}>
    <h3>${record ? 'Edit record' : 'New record'}</h3>
    <div class="row wrap">
      <${Input} label="Kind" required value=${form.kind} onInput=${set('kind')} error=${error?.fieldError?.('kind')} hint="e.g. run, sample, observation" />
      <${Input} label="Title" required value=${form.title} onInput=${set('title')} error=${error?.fieldError?.('title')} />
      <${Input} label="Tags (comma separated)" value=${form.tags} onInput=${set('tags')} error=${error?.fieldError?.('tags')} />
    </div>
    <${TextArea} label="Data (JSON object)" class="code" rows="8" spellcheck="false" value=${form.data} onInput=${set('data')} error=${dataError} />
    <${ErrorNote} error=${error} />
    <div class="row"><button type="submit" disabled=${busy}>${record ? 'Save record' : 'Create record'}</button>
      <button type="button" class="secondary" onClick=${onCancel}>Cancel</button></div>
  </form>`;
}

export function Records({ project, access }) {
  const [filters, setFilters] = useState({ kind: '', tag: '', q: '', created_by: '', from: '', to: '', sort: '-created_at' });
  const [editing, setEditing] = useState(null); // null, 'new' or a record
  const set = (key) => (value) => setFilters((f) => ({ ...f, [key]: value }));
  const query = {
    kind: filters.kind, tag: filters.tag, q: filters.q, created_by: filters.created_by, sort: filters.sort,
    created_at__gte: filters.from ? `${filters.from}T00:00:00Z` : '', created_at__lte: filters.to ? `${filters.to}T23:59:59Z` : '',
  };
  const paged = usePaged((cursor) => api.get(`/api/projects/${project.id}/records`, { ...query, cursor, limit: 25 }), [project.id, JSON.stringify(query)]);
  const exporter = useAction();
  const exportAs = (format) => exporter.run(() => api.download(`/api/projects/${project.id}/records`, { ...query, format }, `records.${format}`));
  const remove = async (record) => {
    await api.del(`/api/records/${record.id}`);
    paged.setItems((all) => all.filter((r) => r.id !== record.id));
  };
  return html`<section aria-labelledby="records-h">
    <div class="heading"><h2 id="records-h">Records</h2>
      ${access.write && !editing && html`<button type="button" onClick=${() => setEditing('new')}>New record</button>`}</div>
    ${editing && html`<${RecordForm} pid=${project.id} record=${editing === 'new' ? null : editing}
      onCancel=${() => setEditing(null)} onSaved=${() => { setEditing(null); paged.reload(); }} />`}
    <form class="filters" role="search" aria-label="Filter records" onSubmit=${(e) => e.preventDefault()}>
      <${Input} label="Text" type="search" value=${filters.q} onInput=${set('q')} />
      <${Input} label="Kind" value=${filters.kind} onInput=${set('kind')} />
      <${Input} label="Tag" value=${filters.tag} onInput=${set('tag')} />
      <${Input} label="Creator (user id)" value=${filters.created_by} onInput=${set('created_by')} />
      <${Input} label="Created from" type="date" value=${filters.from} onInput=${set('from')} />
      <${Input} label="Created to" type="date" value=${filters.to} onInput=${set('to')} />
      <${Select} label="Sort" value=${filters.sort} onChange=${set('sort')} options=${SORTS} />
    </form>
    <div class="row"><button type="button" class="secondary" onClick=${() => exportAs('csv')}>Export CSV</button>
      <button type="button" class="secondary" onClick=${() => exportAs('jsonl')}>Export JSONL</button></div>
    <${ErrorNote} error=${exporter.error} />
    <${PagedList} paged=${paged} empty="No records match.">
      <div class="scroll" tabindex="0" role="region" aria-label="Records table"><table>
        <caption class="visually-hidden">Records</caption>
        <thead><tr><th scope="col">Title</th><th scope="col">Kind</th><th scope="col">Tags</th><th scope="col">Data</th><th scope="col">Created</th>${access.write && html`<th scope="col">Actions</th>`}</tr></thead>
        <tbody>${paged.items.map((r) => html`<tr key=${r.id}>
          <td>${r.title}</td><td>${r.kind}</td><td>${r.tags.join(', ')}</td>
          <td><code class="clip">${JSON.stringify(r.data)}</code></td><td>${day(r.created_at)}</td>
          ${access.write && html`<td class="row"><button type="button" class="small secondary" onClick=${() => setEditing(r)} aria-label=${`Edit ${r.title}`}>Edit</button>
            <button type="button" class="small danger" onClick=${() => remove(r)} aria-label=${`Delete ${r.title}`}>Delete</button></td>`}
        </tr>`)}</tbody>
      </table></div>
    <//>
  </section>`;
}
