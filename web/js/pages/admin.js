// Heads only: users (search, role, deactivate, reset links) and the system view (with the mail outbox).

import { html, useState } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { useSession } from '../session.js';
import { ErrorNote, Input, Loading, Notice, PagedList, bytes, useAction, useLoad, usePaged, when } from '../ui.js';

const ROLES = [['student', 'Student'], ['researcher', 'Researcher'], ['GD', 'Group director (GD)'], ['DH', 'Department head (DH)']];

export function AdminUsers() {
  const { user: me } = useSession();
  const [q, setQ] = useState('');
  const paged = usePaged((cursor) => api.get('/api/users', { q, cursor, limit: 25 }), [q]);
  const { busy, error, run } = useAction();
  const [message, setMessage] = useState('');
  const [reset, setReset] = useState(null);
  const makeReset = (u) => run(async () => {
    const link = await api.post(`/api/users/${u.id}/password-reset`);
    setReset({ ...link, name: u.name });
    setMessage('');
  });
  const change = (u, fields, said) => run(async () => {
    const changed = await api.patch(`/api/users/${u.id}`, fields);
    paged.setItems((all) => all.map((x) => (x.id === u.id ? changed : x)));
    setMessage(said);
  });
  return html`<section>
    <h1>Users</h1>
    <form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}><${Input} label="Search by name or email" type="search" value=${q} onInput=${setQ} /></form>
    <${ErrorNote} error=${error} /><${Notice} text=${message} />
    ${reset && html`<div class="note ok" role="status">
      <p>A password reset link for ${reset.name}. Hand it over privately: it works once, until ${when(reset.expires_at)}, and a newer link replaces it.</p>
      <p><code class="secret" aria-label=${`Reset link for ${reset.name}`}>${reset.url}</code></p>
    </div>`}
    <${PagedList} paged=${paged} empty="Nobody matches.">
      <div class="scroll" tabindex="0" role="region" aria-label="Users table"><table><caption class="visually-hidden">Users</caption>
        <thead><tr><th scope="col">Name</th><th scope="col">Email</th><th scope="col">Role</th><th scope="col">Status</th><th scope="col">Actions</th></tr></thead>
        <tbody>${paged.items.map((u) => html`<tr key=${u.id}>
          <td>${u.name}</td><td>${u.email}</td>
          <td><select aria-label=${`Role of ${u.name}`} value=${u.role} disabled=${busy || u.id === me.id} onChange=${(e) => change(u, { role: e.currentTarget.value }, `${u.name} is now ${e.currentTarget.value}.`)}>
            ${ROLES.map(([v, t]) => html`<option value=${v} selected=${v === u.role}>${t}</option>`)}</select></td>
          <td>${u.active ? 'active' : 'deactivated'}</td>
          <td>${u.active && html`<button type="button" class="small secondary" disabled=${busy} onClick=${() => makeReset(u)} aria-label=${`Make a reset link for ${u.name}`}>Reset link</button>`}
            ${u.id !== me.id && (u.active
            ? html`<button type="button" class="small danger" disabled=${busy} onClick=${() => change(u, { active: false }, `${u.name} was deactivated.`)} aria-label=${`Deactivate ${u.name}`}>Deactivate</button>`
            : html`<button type="button" class="small secondary" disabled=${busy} onClick=${() => change(u, { active: true }, `${u.name} was reactivated.`)} aria-label=${`Reactivate ${u.name}`}>Reactivate</button>`)}</td>
        </tr>`)}</tbody></table></div>
    <//>
  </section>`;
}

// a value for people: sizes in KiB/MiB/GiB, counts with separators, seconds as such
function human(key, v) {
  if (v === null || v === undefined) return 'none';
  if (typeof v === 'number' && key.endsWith('_bytes')) return bytes(v);
  if (typeof v === 'number' && key.endsWith('_s')) return `${v.toLocaleString()} s`;
  if (typeof v === 'number') return v.toLocaleString();
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function Pairs({ caption, data }) {
  return html`<table><caption>${caption}</caption><tbody>
    ${Object.entries(data).map(([k, v]) => html`<tr key=${k}><th scope="row">${k.replace(/_(bytes|s)$/, '').replace(/_/g, ' ')}</th><td>${human(k, v)}</td></tr>`)}
  </tbody></table>`;
}

function SignInPolicy() {
  const policy = useLoad(() => api.get('/api/auth/sign-in-policy'), []);
  const providers = useLoad(() => api.publicGet('/api/auth/providers'), []);
  const { busy, error, run } = useAction();
  if (!policy.data || !providers.data) return html`<${ErrorNote} error=${policy.error || providers.error} />`;
  const set = (value) => run(async () => { await api.patch('/api/auth/sign-in-policy', { password_sign_in: value }); await policy.reload(); });
  const everyone = policy.data.password_sign_in === 'everyone';
  return html`<section aria-labelledby="signin-policy">
    <h2 id="signin-policy">Sign-in</h2>
    <p>${providers.data.oidc ? `Single sign-on: ${providers.data.display_name}.` : 'Single sign-on is not set up ([oidc] in config.toml).'}
      Password sign-in: ${everyone ? 'everyone' : 'heads only'}.</p>
    ${everyone
      ? html`<button type="button" class="secondary" disabled=${busy || !providers.data.oidc} onClick=${() => set('heads')}>Password sign-in for heads only</button>`
      : html`<button type="button" class="secondary" disabled=${busy} onClick=${() => set('everyone')}>Password sign-in for everyone</button>`}
    <${ErrorNote} error=${error} />
  </section>`;
}

export function AdminSystem() {
  const system = useLoad(() => api.get('/api/system'), []);
  if (system.loading && !system.data) return html`<${Loading} />`;
  if (system.error) return html`<section><h1>System</h1><${ErrorNote} error=${system.error} /></section>`;
  const s = system.data;
  return html`<section>
    <div class="heading"><h1>System</h1><button type="button" class="secondary" onClick=${system.reload}>Refresh</button></div>
    <p class="meta">Instance ${s.instance_id} · worker pool ${s.pool.healthy ? 'healthy' : 'rebuilding'} (generation ${s.pool.generation}) · ${s.pool.running_jobs.length} running</p>
    <div class="grid">
      <${Pairs} caption="Worker pool size and its inputs" data=${s.pool.sizing} />
      <${Pairs} caption="Jobs by status" data=${s.jobs} />
      <${Pairs} caption="Versions" data=${s.versions} />
      <${Pairs} caption=${`Mail outbox (mail ${s.mail.enabled ? 'on' : 'off'})`} data=${s.mail.counts} />
      <${Pairs} caption="Quotas per person (none: no limit)" data=${s.quotas} />
    </div>
    ${s.mail.troubles.length > 0 && html`<div class="scroll" tabindex="0" role="region" aria-label="Mail troubles table"><table>
      <caption>Mail that could not be sent</caption>
      <thead><tr><th scope="col">Kind</th><th scope="col">To</th><th scope="col">Status</th><th scope="col">Tries</th><th scope="col">Error</th><th scope="col">When</th></tr></thead>
      <tbody>${s.mail.troubles.map((t) => html`<tr key=${t.id}><td>${t.kind}</td><td>${t.recipient}</td><td>${t.status === 'failed' ? 'given up' : 'will retry'}</td>
        <td>${t.attempts}</td><td>${t.error}</td><td>${when(t.at)}</td></tr>`)}</tbody>
    </table></div>`}
    <${SignInPolicy} />
  </section>`;
}
