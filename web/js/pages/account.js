// The signed-in user's own account: name, password, mail, tokens and calendar link.

import { html, useState } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { isHead, useSession } from '../session.js';
import { Check, ErrorNote, Input, Loading, Notice, bytes, useAction, useLoad, when } from '../ui.js';

// personal access tokens for scripts and instrument PCs: made here, shown once, revoked here
function Tokens() {
  const { user } = useSession();
  const tokens = useLoad(() => api.get('/api/tokens'), []);
  const [form, setForm] = useState({ name: '', write: false, admin: false, projects: '', expires: '' });
  const [made, setMade] = useState(null);
  const create = useAction();
  const revoke = useAction();
  const set = (key) => (value) => setForm((f) => ({ ...f, [key]: value }));
  const submit = (e) => {
    e.preventDefault();
    const scopes = ['read', ...(form.write ? ['write'] : []), ...(form.admin ? ['admin'] : [])];
    const projects = form.projects.split(',').map((x) => x.trim()).filter(Boolean);
    const body = { name: form.name, scopes, ...(projects.length ? { project_ids: projects } : {}),
      ...(form.expires ? { expires_at: `${form.expires}T00:00:00Z` } : {}) };
    create.run(async () => {
      setMade(await api.post('/api/tokens', body));
      setForm({ name: '', write: false, admin: false, projects: '', expires: '' });
      tokens.reload();
    });
  };
  const items = tokens.data?.items || [];
  return html`<section class="card" aria-labelledby="tokens-h">
    <h2 id="tokens-h">Personal access tokens</h2>
    <p class="muted">For scripts and instrument PCs: send one as <code>Authorization: Bearer lhp_…</code>. It can do at most what you can.</p>
    <form onSubmit=${submit} aria-label="New token">
      <div class="row wrap">
        <${Input} label="Token name" required value=${form.name} onInput=${set('name')} error=${create.error?.fieldError?.('name')} />
        <${Input} label="Only these projects (ids, comma separated; empty = all yours)" value=${form.projects} onInput=${set('projects')} error=${create.error?.fieldError?.('project_ids')} />
        <${Input} label="Expires on (empty = never)" type="date" value=${form.expires} onInput=${set('expires')} error=${create.error?.fieldError?.('expires_at')} />
      </div>
      <${Check} label="May change things (write)" checked=${form.write} onChange=${set('write')} />
      ${isHead(user) && html`<${Check} label="May manage users and the system (admin)" checked=${form.admin} onChange=${set('admin')} />`}
      <${ErrorNote} error=${create.error} />
      <button type="submit" disabled=${create.busy}>Make token</button>
    </form>
    ${made && html`<div class="note ok" role="status">
      <p>Your new token “${made.name}”. Copy it now: it is not shown again.</p>
      <p><code class="secret" aria-label="Your new token">${made.token}</code></p>
    </div>`}
    <${ErrorNote} error=${tokens.error || revoke.error} />
    ${tokens.loading && html`<${Loading} />`}
    ${items.length > 0 && html`<div class="scroll" tabindex="0" role="region" aria-label="Tokens table"><table><caption class="visually-hidden">Your tokens</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">Starts with</th><th scope="col">Scopes</th><th scope="col">Projects</th><th scope="col">Expires</th><th scope="col">Last used</th><th scope="col">Actions</th></tr></thead>
      <tbody>${items.map((t) => html`<tr key=${t.id}><td>${t.name}</td><td><code>${t.prefix}…</code></td><td>${t.scopes.join(', ')}</td>
        <td>${t.project_ids ? t.project_ids.length : 'all'}</td><td>${t.expires_at ? when(t.expires_at) : 'never'}</td>
        <td>${t.last_used_at ? `${when(t.last_used_at)} from ${t.last_used_from}` : 'never'}</td>
        <td>${t.revoked_at ? 'revoked' : html`<button type="button" class="small danger" disabled=${revoke.busy} aria-label=${`Revoke ${t.name}`}
          onClick=${() => revoke.run(async () => { await api.del(`/api/tokens/${t.id}`); tokens.reload(); })}>Revoke</button>`}</td></tr>`)}</tbody>
    </table></div>`}
  </section>`;
}

function CalendarLink() {
  const [link, setLink] = useState(null);
  const { busy, error, run } = useAction();
  return html`<section class="card" aria-labelledby="calendar-h">
    <h2 id="calendar-h">Calendar subscription</h2>
    <p class="muted">A private link to your meetings for Thunderbird, Apple Calendar, Google Calendar or Outlook (subscribe, do not import). Making a new link stops the old one.</p>
    <div class="row wrap">
      <button type="button" disabled=${busy} onClick=${() => run(async () => setLink((await api.post('/api/calendar/link')).url))}>Make a calendar link</button>
      <button type="button" class="secondary" disabled=${busy} onClick=${() => run(async () => { await api.del('/api/calendar/link'); setLink(''); })}>Remove my calendar link</button>
    </div>
    <${ErrorNote} error=${error} />
    ${link && html`<p role="status">Subscribe to: <code class="secret" aria-label="Calendar link">${link}</code></p>`}
    ${link === '' && html`<p role="status">Your calendar link was removed.</p>`}
  </section>`;
}

// which mail this person gets (reset links always come); the target of List-Unsubscribe in every mail
function MailSettings() {
  const settings = useLoad(() => api.get('/api/users/me/notification-settings'), []);
  const { error, run } = useAction();
  const [saved, setSaved] = useState('');
  // the box shows the choice at once; the server's answer (or a reload after an error) settles it
  const toggle = (key, label) => (value) => {
    settings.set({ ...settings.data, [key]: value });
    run(async () => {
      try {
        settings.set(await api.patch('/api/users/me/notification-settings', { [key]: value }));
        setSaved(`${label}: ${value ? 'on' : 'off'}.`);
      } catch (error) {
        settings.reload();
        throw error;
      }
    });
  };
  const s = settings.data;
  return html`<section class="card" id="notifications" aria-labelledby="notifications-h">
    <h2 id="notifications-h">Email notifications</h2>
    <p class="muted">When this LabHub sends mail. Password reset links are always sent.</p>
    ${settings.loading && !s && html`<${Loading} />`}
    ${s && html`<fieldset><legend class="visually-hidden">Mail I get</legend>
      <${Check} label="Meeting invitations, changes and cancellations (with a calendar invitation)" checked=${s.meeting_invitations}
        onChange=${toggle('meeting_invitations', 'Meeting invitations')} />
      <${Check} label="Job notices: a job of mine failed, or finished after a long run" checked=${s.job_notices}
        onChange=${toggle('job_notices', 'Job notices')} />
    </fieldset>`}
    <${ErrorNote} error=${settings.error || error} />
    <${Notice} text=${saved} />
  </section>`;
}

// what the person holds against their quotas (limits set by the lab; null: none)
function Usage() {
  const usage = useLoad(() => api.get('/api/users/me/usage'), []);
  if (usage.loading && !usage.data) return html`<${Loading} />`;
  if (usage.error) return html`<${ErrorNote} error=${usage.error} />`;
  const u = usage.data;
  const rows = [
    ['Storage', bytes(u.storage_bytes.used), u.storage_bytes.limit === null ? 'no limit' : bytes(u.storage_bytes.limit)],
    ['Unfinished uploads', u.open_uploads.used, u.open_uploads.limit ?? 'no limit'],
    ['Jobs waiting or running', u.active_jobs.used, u.active_jobs.limit ?? 'no limit'],
    ['Open live views', u.open_streams.used, u.open_streams.limit ?? 'no limit'],
  ];
  return html`<section class="card" aria-label="Usage">
    <h2>Usage</h2>
    <table><caption class="visually-hidden">What you use and your limits</caption>
      <thead><tr><th scope="col">What</th><th scope="col">Used</th><th scope="col">Limit</th></tr></thead>
      <tbody>${rows.map(([what, used, limit]) => html`<tr key=${what}><th scope="row">${what}</th><td>${used}</td><td>${limit}</td></tr>`)}</tbody>
    </table>
  </section>`;
}

export function Account() {
  const { user, setUser } = useSession();
  const [name, setName] = useState(user.name);
  const [passwords, setPasswords] = useState({ old_password: '', password: '', revoke_tokens: false });
  const profile = useAction();
  const secret = useAction();
  const [message, setMessage] = useState('');
  const saveName = (e) => {
    e.preventDefault();
    profile.run(async () => { setUser(await api.patch(`/api/users/${user.id}`, { name })); setMessage('Name saved.'); });
  };
  const savePassword = (e) => {
    e.preventDefault();
    secret.run(async () => {
      await api.patch(`/api/users/${user.id}`, passwords);
      // a new password ends every session, this one too: sign this one in again with it
      await api.signIn(user.email, passwords.password);
      setPasswords({ old_password: '', password: '', revoke_tokens: false });
      setMessage('Password changed. Every other session has been signed out.');
    });
  };
  const everywhere = useAction();
  const signOutEverywhere = () => everywhere.run(() => api.signOutEverywhere());
  return html`<section>
    <h1>My account</h1>
    <p class="meta">${user.email} · ${user.role}</p>
    <${Notice} text=${message} />
    <form class="card" onSubmit=${saveName} aria-label="Name">
      <${Input} label="Name" required value=${name} onInput=${setName} error=${profile.error?.fieldError?.('name')} />
      <${ErrorNote} error=${profile.error} />
      <button type="submit" disabled=${profile.busy}>Save name</button>
    </form>
    <form class="card" onSubmit=${savePassword} aria-label="Password">
      <input type="text" autocomplete="username" value=${user.email} readonly hidden />
      <${Input} label="Current password" type="password" autocomplete="current-password" required value=${passwords.old_password}
        onInput=${(v) => setPasswords((p) => ({ ...p, old_password: v }))} error=${secret.error?.fieldError?.('old_password')} />
      <${Input} label="New password" type="password" autocomplete="new-password" required value=${passwords.password}
        onInput=${(v) => setPasswords((p) => ({ ...p, password: v }))} error=${secret.error?.fieldError?.('password')} hint="At least 10 characters." />
      <${Check} label="Also revoke all my personal access tokens" checked=${passwords.revoke_tokens} onChange=${(v) => setPasswords((p) => ({ ...p, revoke_tokens: v }))} />
      <${ErrorNote} error=${secret.error} />
      <button type="submit" disabled=${secret.busy}>Change password</button>
    </form>
    <div class="card" role="group" aria-label="Sessions">
      <h2>Sessions</h2>
      <p class="muted">Signed in somewhere you no longer use, or lost a device? End every session of yours, on
        every browser and device, this one included. Personal access tokens keep working; revoke them below.</p>
      <${ErrorNote} error=${everywhere.error} />
      <button type="button" class="secondary" disabled=${everywhere.busy} onClick=${signOutEverywhere}>Sign out everywhere</button>
    </div>
    <${Usage} />
    <${MailSettings} />
    <${Tokens} />
    <${CalendarLink} />
  </section>`;
}
