// The signed-in user's own account: name and password.

import { html, useState } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { useSession } from '../session.js';
import { ErrorNote, Input, Notice, useAction } from '../ui.js';

export function Account() {
  const { user, setUser } = useSession();
  const [name, setName] = useState(user.name);
  const [passwords, setPasswords] = useState({ old_password: '', password: '' });
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
      setPasswords({ old_password: '', password: '' });
      setMessage('Password changed. Other sessions have been signed out.');
    });
  };
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
      <${ErrorNote} error=${secret.error} />
      <button type="submit" disabled=${secret.busy}>Change password</button>
    </form>
  </section>`;
}
