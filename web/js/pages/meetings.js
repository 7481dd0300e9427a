// Meetings: upcoming and past, create/edit/cancel, RSVP, attendance (leads, once started), action
// items, .ics download.

import { html, useState } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { projectAccess, useSession } from '../session.js';
import { Check, ErrorNote, Input, Link, Loading, Notice, PagedList, Select, TextArea, useAction, useLoad, usePaged, when } from '../ui.js';

// <input type="datetime-local"> speaks local time without a zone; the API wants one
const toLocalInput = (iso) => {
  const d = iso ? new Date(iso) : new Date(Date.now() + 3600_000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
};
const fromLocalInput = (value) => new Date(value).toISOString();

function MeetingForm({ project, meeting, onSaved, onCancel }) {
  const members = useLoad(() => api.get(`/api/projects/${project.id}/members`), [project.id]);
  const [form, setForm] = useState({
    title: meeting?.title || '', starts: toLocalInput(meeting?.starts_at), duration: meeting?.duration_minutes || 60,
    location: meeting?.location || '', link: meeting?.link || '', agenda: meeting?.agenda || '',
    attendees: new Set(meeting?.attendee_ids || []),
  });
  const { busy, error, run } = useAction();
  const set = (key) => (value) => setForm((f) => ({ ...f, [key]: value }));
  const toggle = (id, on) => setForm((f) => {
    const attendees = new Set(f.attendees);
    if (on) attendees.add(id); else attendees.delete(id);
    return { ...f, attendees };
  });
  const submit = (e) => {
    e.preventDefault();
    const body = {
      title: form.title, starts_at: fromLocalInput(form.starts), duration_minutes: Number(form.duration),
      location: form.location, link: form.link || null, agenda: form.agenda, attendee_ids: [...form.attendees],
    };
    run(async () => onSaved(meeting ? await api.patch(`/api/meetings/${meeting.id}`, body) : await api.post(`/api/projects/${project.id}/meetings`, body)));
  };
  const people = members.data ? (members.data.items || members.data) : [];
  return html`<form class="card" onSubmit=${submit} aria-label=${meeting ? 'Edit meeting' : 'New meeting'}>
    <h3>${meeting ? 'Edit meeting' : 'New meeting'}</h3>
    <div class="row wrap">
      <${Input} label="Title" required value=${form.title} onInput=${set('title')} error=${error?.fieldError?.('title')} />
      <${Input} label="Starts" type="datetime-local" required value=${form.starts} onInput=${set('starts')} error=${error?.fieldError?.('starts_at')} />
      <${Input} label="Duration (minutes)" type="number" min="1" value=${form.duration} onInput=${set('duration')} error=${error?.fieldError?.('duration_minutes')} />
      <${Input} label="Location" value=${form.location} onInput=${set('location')} error=${error?.fieldError?.('location')} />
      <${Input} label="Video link" type="url" value=${form.link} onInput=${set('link')} error=${error?.fieldError?.('link')} />
    </div>
    <${TextArea} label="Agenda" value=${form.agenda} onInput=${set('agenda')} error=${error?.fieldError?.('agenda')} />
    <fieldset><legend>Attendees</legend>
      ${members.loading && html`<${Loading} />`}
      ${people.map((m) => html`<${Check} key=${m.user_id} label=${`${m.name} (${m.role})`} checked=${form.attendees.has(m.user_id)} onChange=${(on) => toggle(m.user_id, on)} />`)}
    </fieldset>
    <${ErrorNote} error=${error} />
    <div class="row"><button type="submit" disabled=${busy}>${meeting ? 'Save meeting' : 'Create meeting'}</button>
      <button type="button" class="secondary" onClick=${onCancel}>Cancel</button></div>
  </form>`;
}

export function MeetingList({ project, access }) {
  const [creating, setCreating] = useState(false);
  const paged = usePaged((cursor) => api.get(`/api/projects/${project.id}/meetings`, { cursor, limit: 25 }), [project.id]);
  const ics = useAction();
  const now = Date.now();
  const upcoming = paged.items.filter((m) => new Date(m.ends_at).getTime() >= now);
  const past = paged.items.filter((m) => new Date(m.ends_at).getTime() < now);
  const row = (m) => html`<li key=${m.id} class="card">
    <div class="row wrap spread"><${Link} href=${`/meetings/${m.id}`}>${m.title}<//><span class="muted">${when(m.starts_at)} · ${m.duration_minutes} min${m.status === 'cancelled' ? ' · cancelled' : ''}</span></div>
    ${m.location && html`<p class="meta">${m.location}</p>`}
  </li>`;
  return html`<section aria-labelledby="meetings-h">
    <div class="heading"><h2 id="meetings-h">Meetings</h2>
      <div class="row">
        <button type="button" class="secondary" onClick=${() => ics.run(() => api.download(`/api/projects/${project.id}/meetings.ics`, null, 'meetings.ics'))}>Download calendar (.ics)</button>
        ${access.write && !creating && html`<button type="button" onClick=${() => setCreating(true)}>New meeting</button>`}
      </div></div>
    <${ErrorNote} error=${ics.error} />
    ${creating && html`<${MeetingForm} project=${project} onCancel=${() => setCreating(false)} onSaved=${() => { setCreating(false); paged.reload(); }} />`}
    <${PagedList} paged=${paged} empty="No meetings yet.">
      ${upcoming.length > 0 && html`<h3>Upcoming</h3><ul class="plain">${upcoming.map(row)}</ul>`}
      ${past.length > 0 && html`<h3>Past</h3><ul class="plain">${past.map(row)}</ul>`}
    <//>
  </section>`;
}

function Attendance({ meeting, people, onSaved }) {
  const marked = Object.fromEntries(meeting.attendance.map((a) => [a.user_id, a.presence]));
  const [present, setPresent] = useState(() => new Set(people.filter((p) => marked[p.user_id] === 'present').map((p) => p.user_id)));
  const { busy, error, run } = useAction();
  const [message, setMessage] = useState('');
  const submit = (e) => {
    e.preventDefault();
    const present_ids = [...present];
    const absent_ids = people.map((p) => p.user_id).filter((id) => !present.has(id));
    run(async () => { onSaved(await api.post(`/api/meetings/${meeting.id}/attendance`, { present_ids, absent_ids })); setMessage('Attendance saved.'); });
  };
  return html`<form class="card" onSubmit=${submit} aria-label="Attendance">
    <h2>Attendance</h2>
    <fieldset><legend>Who was there</legend>
      ${people.map((p) => html`<${Check} key=${p.user_id} label=${p.name} checked=${present.has(p.user_id)}
        onChange=${(on) => setPresent((s) => { const next = new Set(s); if (on) next.add(p.user_id); else next.delete(p.user_id); return next; })} />`)}
    </fieldset>
    <${ErrorNote} error=${error} /><${Notice} text=${message} />
    <button type="submit" disabled=${busy}>Save attendance</button>
  </form>`;
}

function ActionItems({ meeting, people, canEdit, onSaved }) {
  const [text, setText] = useState('');
  const [assignee, setAssignee] = useState('');
  const { busy, error, run } = useAction();
  const save = (items) => run(async () => onSaved(await api.patch(`/api/meetings/${meeting.id}`, { action_items: items })));
  const name = (id) => people.find((p) => p.user_id === id)?.name || 'someone';
  const add = (e) => {
    e.preventDefault();
    save([...meeting.action_items, { text, assignee_id: assignee || null, due: null, done: false }]);
    setText('');
  };
  return html`<section class="card" aria-labelledby="actions-h">
    <h2 id="actions-h">Action items</h2>
    ${meeting.action_items.length === 0 && html`<p class="muted">None yet.</p>`}
    <ul class="plain">${meeting.action_items.map((item, i) => html`<li key=${i}>
      ${canEdit ? html`<${Check} label=${`${item.text}${item.assignee_id ? ` — ${name(item.assignee_id)}` : ''}`} checked=${item.done}
        onChange=${(done) => save(meeting.action_items.map((x, j) => (j === i ? { ...x, done } : x)))} />`
        : html`<span>${item.done ? '✓ done: ' : 'open: '}${item.text}${item.assignee_id ? ` — ${name(item.assignee_id)}` : ''}</span>`}
    </li>`)}</ul>
    ${canEdit && html`<form class="row wrap" onSubmit=${add} aria-label="Add an action item">
      <${Input} label="New action item" required value=${text} onInput=${setText} />
      <${Select} label="Assignee" value=${assignee} onChange=${setAssignee} options=${[['', 'Nobody'], ...people.map((p) => [p.user_id, p.name])]} />
      <button type="submit" disabled=${busy}>Add</button>
    </form>`}
    <${ErrorNote} error=${error} />
  </section>`;
}

export function MeetingPage({ id }) {
  const { user } = useSession();
  const meeting = useLoad(() => api.get(`/api/meetings/${id}`), [id]);
  const project = useLoad(() => (meeting.data ? api.get(`/api/projects/${meeting.data.project_id}`) : Promise.resolve(null)), [meeting.data?.project_id]);
  const members = useLoad(() => (meeting.data ? api.get(`/api/projects/${meeting.data.project_id}/members`) : Promise.resolve(null)), [meeting.data?.project_id]);
  const [editing, setEditing] = useState(false);
  const { busy, error, run } = useAction();
  if (meeting.loading && !meeting.data) return html`<${Loading} />`;
  if (meeting.error) return html`<section><h1>Meeting</h1><${ErrorNote} error=${meeting.error} /></section>`;
  const m = meeting.data;
  if (!project.data) return html`<${Loading} />`;
  const access = projectAccess(user, project.data);
  const people = (members.data?.items || members.data || []).filter((p) => m.attendee_ids.includes(p.user_id));
  const mine = m.rsvps.find((r) => r.user_id === user.id)?.response;
  const started = Date.now() >= new Date(m.starts_at).getTime();
  const rsvp = (response) => run(async () => meeting.set(await api.post(`/api/meetings/${m.id}/rsvp`, { response })));
  const cancel = () => run(async () => { await api.del(`/api/meetings/${m.id}`); meeting.reload(); });
  if (editing) {
    return html`<section><h1>Edit “${m.title}”</h1><${MeetingForm} project=${project.data} meeting=${m}
      onCancel=${() => setEditing(false)} onSaved=${(saved) => { meeting.set(saved); setEditing(false); }} /></section>`;
  }
  const answer = (r) => m.rsvps.find((x) => x.user_id === r.user_id)?.response || 'no answer';
  return html`<section>
    <p class="crumbs"><${Link} href=${`/projects/${m.project_id}/meetings`}>${project.data.name} meetings<//> /</p>
    <h1>${m.title}${m.status === 'cancelled' && html` <span class="badge">cancelled</span>`}</h1>
    <p class="meta">${when(m.starts_at)} · ${m.duration_minutes} minutes${m.location ? ` · ${m.location}` : ''}</p>
    ${m.link && html`<p>Video link: <a href=${m.link} rel="noopener noreferrer" target="_blank">${m.link}</a></p>`}
    ${m.agenda && html`<h2>Agenda</h2><p class="pre">${m.agenda}</p>`}
    <${ErrorNote} error=${error} />
    <div class="row wrap">
      <button type="button" class="secondary" onClick=${() => run(() => api.download(`/api/meetings/${m.id}.ics`, null, 'meeting.ics'))}>Download .ics</button>
      ${access.write && m.status !== 'cancelled' && html`<button type="button" class="secondary" onClick=${() => setEditing(true)}>Edit meeting</button>`}
      ${access.write && m.status !== 'cancelled' && html`<button type="button" class="danger" disabled=${busy} onClick=${cancel}>Cancel meeting</button>`}
    </div>
    ${m.attendee_ids.includes(user.id) && m.status !== 'cancelled' && html`<fieldset class="card"><legend>Will you come?</legend>
      <p>Your answer: <strong>${mine || 'none yet'}</strong></p>
      <div class="row">${['yes', 'maybe', 'no'].map((r) => html`<button type="button" class=${r === mine ? '' : 'secondary'} aria-pressed=${r === mine} disabled=${busy} onClick=${() => rsvp(r)}>${r[0].toUpperCase() + r.slice(1)}</button>`)}</div>
    </fieldset>`}
    <h2>Attendees</h2>
    <table><caption class="visually-hidden">Attendees and answers</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">Answer</th><th scope="col">Attendance</th></tr></thead>
      <tbody>${people.map((p) => html`<tr key=${p.user_id}><td>${p.name}</td><td>${answer(p)}</td>
        <td>${m.attendance.find((a) => a.user_id === p.user_id)?.presence || '—'}</td></tr>`)}</tbody></table>
    ${access.manage && started && m.status !== 'cancelled' && html`<${Attendance} meeting=${m} people=${people} onSaved=${meeting.set} />`}
    ${access.manage && !started && html`<p class="muted">Attendance can be taken once the meeting has started.</p>`}
    <${ActionItems} meeting=${m} people=${people} canEdit=${access.write} onSaved=${meeting.set} />
  </section>`;
}
