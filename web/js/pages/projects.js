// The project list: search, archived toggle, create.

import { html, useState } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { navigate } from '../router.js';
import { Check, ErrorNote, Input, Link, PagedList, TextArea, day, useAction, usePaged } from '../ui.js';

function NewProject() {
  const [open, setOpen] = useState(false);
  const [form, setForm] = useState({ name: '', description: '' });
  const { busy, error, run } = useAction();
  if (!open) return html`<button type="button" onClick=${() => setOpen(true)}>New project</button>`;
  const submit = (e) => {
    e.preventDefault();
    run(async () => {
      const project = await api.post('/api/projects', form);
      navigate(`/projects/${project.id}`);
    });
  };
  return html`<form class="card" onSubmit=${submit} aria-label="New project">
    <h2>New project</h2>
    <${Input} label="Project name" required value=${form.name} onInput=${(v) => setForm((f) => ({ ...f, name: v }))} error=${error?.fieldError?.('name')} />
    <${TextArea} label="Description" value=${form.description} onInput=${(v) => setForm((f) => ({ ...f, description: v }))} error=${error?.fieldError?.('description')} />
    <${ErrorNote} error=${error} />
    <div class="row"><button type="submit" disabled=${busy}>Create project</button>
    <button type="button" class="secondary" onClick=${() => setOpen(false)}>Cancel</button></div>
  </form>`;
}

export function Projects() {
  const [q, setQ] = useState('');
  const [archived, setArchived] = useState(false);
  const paged = usePaged(
    (cursor) => api.get('/api/projects', { q, status: archived ? 'archived' : 'active', cursor, limit: 25 }),
    [q, archived],
  );
  return html`<section>
    <div class="heading"><h1>Projects</h1><${NewProject} /></div>
    <form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}>
      <${Input} label="Search projects" type="search" value=${q} onInput=${setQ} />
      <${Check} label="Show archived projects" checked=${archived} onChange=${setArchived} />
    </form>
    <${PagedList} paged=${paged} empty=${archived ? 'No archived projects.' : 'No projects yet. Create one, or ask a lead to add you.'}>
      <ul class="cards">
        ${paged.items.map((p) => html`<li key=${p.id} class="card">
          <h2><${Link} href=${`/projects/${p.id}`}>${p.name}<//></h2>
          <p class="muted">${p.description || 'No description'}</p>
          <p class="meta">${p.members.length} member${p.members.length === 1 ? '' : 's'} · created ${day(p.created_at)}${p.status === 'archived' ? ' · archived' : ''}</p>
        </li>`)}
      </ul>
    <//>
  </section>`;
}
