// One project: its tabs, and the overview (details, archive/restore, members).

import { html, useState } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { isHead, projectAccess, useSession } from '../session.js';
import { ErrorNote, Input, Link, Loading, Notice, Select, TextArea, day, useAction, useLoad } from '../ui.js';
import { Documents } from './documents.js';
import { Records } from './records.js';
import { Ingest } from './ingest.js';
import { DatasetList, PlotList } from './datasets.js';
import { MeetingList } from './meetings.js';
import { Query } from './query.js';
import { Engagement } from './engagement.js';

const TABS = [
  ['overview', 'Overview'], ['documents', 'Documents'], ['records', 'Records'], ['ingest', 'Ingest'],
  ['datasets', 'Datasets'], ['query', 'Query'], ['plots', 'Plots'], ['meetings', 'Meetings'], ['engagement', 'Engagement'],
];
const ROLES = [['lead', 'Lead'], ['member', 'Member'], ['viewer', 'Viewer']];

function Details({ project, access, onChange }) {
  const [editing, setEditing] = useState(false);
  const [form, setForm] = useState({ name: project.name, description: project.description });
  const { busy, error, run } = useAction();
  const save = (e) => {
    e.preventDefault();
    run(async () => { onChange(await api.patch(`/api/projects/${project.id}`, form)); setEditing(false); });
  };
  const setStatus = (status) => run(async () => onChange(await api.patch(`/api/projects/${project.id}`, { status })));
  if (editing) {
    return html`<form class="card" onSubmit=${save} aria-label="Edit project">
      <${Input} label="Project name" required value=${form.name} onInput=${(v) => setForm((f) => ({ ...f, name: v }))} error=${error?.fieldError?.('name')} />
      <${TextArea} label="Description" value=${form.description} onInput=${(v) => setForm((f) => ({ ...f, description: v }))} error=${error?.fieldError?.('description')} />
      <${ErrorNote} error=${error} />
      <div class="row"><button type="submit" disabled=${busy}>Save</button><button type="button" class="secondary" onClick=${() => setEditing(false)}>Cancel</button></div>
    </form>`;
  }
  return html`<div class="card">
    <p>${project.description || html`<span class="muted">No description.</span>`}</p>
    <p class="meta">Created ${day(project.created_at)} · status ${project.status}${access.role ? ` · your role: ${access.role}` : ''}</p>
    <${ErrorNote} error=${error} />
    ${access.manage && html`<div class="row">
      <button type="button" class="secondary" onClick=${() => setEditing(true)}>Edit details</button>
      ${project.status === 'active'
        ? html`<button type="button" class="secondary" disabled=${busy} onClick=${() => setStatus('archived')}>Archive project</button>`
        : html`<button type="button" class="secondary" disabled=${busy} onClick=${() => setStatus('active')}>Restore project</button>`}
    </div>`}
  </div>`;
}

function AddMember({ pid, onAdded }) {
  const { user } = useSession();
  const [q, setQ] = useState('');
  const [found, setFound] = useState(null);
  const [role, setRole] = useState('member');
  const { busy, error, run } = useAction();
  const search = (e) => {
    e.preventDefault();
    run(async () => setFound(await api.get(`/api/projects/${pid}/members/candidates`, { q })));
  };
  const add = (user) => run(async () => { await api.post(`/api/projects/${pid}/members`, { user_id: user.id, role }); setFound(null); setQ(''); onAdded(); });
  const items = found ? (found.items || found) : null;
  return html`<form class="card" onSubmit=${search} aria-label="Add a member">
    <h3>Add a member</h3>
    <div class="row wrap">
      <${Input} label="Find people by name or email" type="search" value=${q} onInput=${setQ}
        hint=${isHead(user) ? '' : 'People you share a project with by name; anyone else by their exact email.'} />
      <${Select} label="Role" value=${role} onChange=${setRole} options=${ROLES} />
      <button type="submit" disabled=${busy || !q.trim()}>Search</button>
    </div>
    <${ErrorNote} error=${error} />
    ${items && (items.length === 0 ? html`<p class="muted">Nobody found.</p>` : html`<ul class="plain">
      ${items.map((u) => html`<li key=${u.id}>${u.name} <span class="muted">${u.email}</span>
        <button type="button" class="small" disabled=${busy} onClick=${() => add(u)} aria-label=${`Add ${u.name} as ${role}`}>Add</button></li>`)}
    </ul>`)}
  </form>`;
}

function Members({ project, access }) {
  const members = useLoad(() => api.get(`/api/projects/${project.id}/members`), [project.id]);
  const { busy, error, run } = useAction();
  const [message, setMessage] = useState('');
  const change = (m, role) => run(async () => { await api.patch(`/api/projects/${project.id}/members/${m.user_id}`, { role }); setMessage(`${m.name} is now ${role}.`); members.reload(); });
  const remove = (m) => run(async () => { await api.del(`/api/projects/${project.id}/members/${m.user_id}`); setMessage(`${m.name} was removed.`); members.reload(); });
  const list = members.data ? (members.data.items || members.data) : [];
  return html`<section aria-labelledby="members-h">
    <h2 id="members-h">Members</h2>
    <${Notice} text=${message} />
    <${ErrorNote} error=${error || members.error} />
    ${members.loading && html`<${Loading} />`}
    <table>
      <caption class="visually-hidden">Project members</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">Email</th><th scope="col">Role</th>${access.manage && html`<th scope="col">Actions</th>`}</tr></thead>
      <tbody>${list.map((m) => html`<tr key=${m.user_id}>
        <td>${m.name}</td><td>${m.email}</td>
        <td>${access.manage
          ? html`<select aria-label=${`Role of ${m.name}`} value=${m.role} disabled=${busy} onChange=${(e) => change(m, e.currentTarget.value)}>
              ${ROLES.map(([v, t]) => html`<option value=${v} selected=${v === m.role}>${t}</option>`)}</select>`
          : m.role}</td>
        ${access.manage && html`<td><button type="button" class="small danger" disabled=${busy} onClick=${() => remove(m)} aria-label=${`Remove ${m.name}`}>Remove</button></td>`}
      </tr>`)}</tbody>
    </table>
    ${access.manage && html`<${AddMember} pid=${project.id} onAdded=${members.reload} />`}
  </section>`;
}

export function ProjectPage({ pid, tab }) {
  const { user } = useSession();
  const project = useLoad(() => api.get(`/api/projects/${pid}`), [pid]);
  if (project.loading && !project.data) return html`<${Loading} />`;
  if (project.error) return html`<section><h1>Project</h1><${ErrorNote} error=${project.error} /><${Link} href="/">Back to projects<//></section>`;
  const p = project.data;
  const access = projectAccess(user, p);
  const body = {
    overview: () => html`<${Details} project=${p} access=${access} onChange=${project.set} /><${Members} project=${p} access=${access} />`,
    documents: () => html`<${Documents} project=${p} access=${access} />`,
    records: () => html`<${Records} project=${p} access=${access} />`,
    ingest: () => html`<${Ingest} project=${p} access=${access} />`,
    datasets: () => html`<${DatasetList} project=${p} />`,
    query: () => html`<${Query} project=${p} access=${access} />`,
    plots: () => html`<${PlotList} project=${p} />`,
    meetings: () => html`<${MeetingList} project=${p} access=${access} />`,
    engagement: () => html`<${Engagement} project=${p} access=${access} />`,
  }[tab];
  return html`<section>
    <p class="crumbs"><${Link} href="/">Projects<//> /</p>
    <h1>${p.name}${p.status === 'archived' && html` <span class="badge">archived</span>`}</h1>
    <nav class="tabs" aria-label="Project sections">
      ${TABS.map(([key, label]) => html`<${Link} key=${key} href=${`/projects/${pid}/${key}`} aria-current=${key === tab ? 'page' : undefined}>${label}<//>`)}
    </nav>
    ${body ? body() : html`<p>Unknown section.</p>`}
  </section>`;
}
