// Password resets: asking for a link by mail, and the page a reset link opens (/reset#token=…).

import { html, useState } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { Check, ErrorNote, Input, Link, Notice, useAction } from '../ui.js';

// the secret travels in the fragment, which the browser never sends to a server; it is read once and
// taken out of the address bar and history, so a shared screen or a back button does not show it
function takeToken() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const token = params.get('token') || '';
  if (token) window.history.replaceState(window.history.state, '', '/reset');
  return token;
}

export function ResetPassword() {
  const [token] = useState(takeToken);
  const [form, setForm] = useState({ password: '', repeat: '', revoke_tokens: false });
  const [done, setDone] = useState(false);
  const { busy, error, run } = useAction();
  const set = (key) => (value) => setForm((f) => ({ ...f, [key]: value }));
  const mismatch = form.repeat && form.password !== form.repeat ? 'The two passwords differ.' : null;
  const submit = (e) => {
    e.preventDefault();
    if (mismatch) return;
    run(async () => {
      await api.post('/api/auth/password-reset/confirm', { token, password: form.password, revoke_tokens: form.revoke_tokens });
      setDone(true);
    });
  };
  if (done) {
    return html`<section class="card">
      <h1>Password changed</h1>
      <${Notice} text="Your new password is set, and every session of your account has been signed out." />
      <p><${Link} href="/signin">Sign in with your new password<//></p>
    </section>`;
  }
  if (!token) {
    return html`<section class="card">
      <h1>Choose a new password</h1>
      <p class="note error" role="alert">This page needs the whole reset link. Open the link you were given again, or ask for a new one.</p>
      <p><${Link} href="/forgot">Ask for a reset link<//> · <${Link} href="/signin">Sign in<//></p>
    </section>`;
  }
  return html`<section class="card">
    <h1>Choose a new password</h1>
    <form onSubmit=${submit}>
      <${Input} label="New password" type="password" autocomplete="new-password" required value=${form.password} onInput=${set('password')}
        error=${error?.fieldError?.('password')} hint="At least 10 characters." />
      <${Input} label="New password again" type="password" autocomplete="new-password" required value=${form.repeat} onInput=${set('repeat')} error=${mismatch} />
      <${Check} label="Also revoke all my personal access tokens" checked=${form.revoke_tokens} onChange=${set('revoke_tokens')} />
      <${ErrorNote} error=${error} />
      <button type="submit" disabled=${busy}>${busy ? 'Saving…' : 'Set new password'}</button>
    </form>
    ${error?.code === 'invalid_reset' && html`<p><${Link} href="/forgot">Ask for a new reset link<//></p>`}
  </section>`;
}

export function ForgotPassword() {
  const [email, setEmail] = useState('');
  const [sent, setSent] = useState('');
  const { busy, error, run } = useAction();
  const submit = (e) => {
    e.preventDefault();
    run(async () => setSent((await api.post('/api/auth/password-reset', { email })).message));
  };
  const noMail = error?.code === 'mail_disabled';
  return html`<section class="card">
    <h1>Forgot your password?</h1>
    <p class="muted">Give the email of your account and LabHub mails you a link to choose a new password.</p>
    <form onSubmit=${submit}>
      <${Input} label="Email" type="email" autocomplete="username" required value=${email} onInput=${setEmail} error=${error?.fieldError?.('email')} />
      ${noMail
        ? html`<p class="note error" role="alert">This LabHub does not send mail. Ask a head of the lab (GD or DH) for a reset link.</p>`
        : html`<${ErrorNote} error=${error} />`}
      <button type="submit" disabled=${busy}>${busy ? 'Sending…' : 'Mail me a reset link'}</button>
    </form>
    <${Notice} text=${sent} />
    <p><${Link} href="/signin">Back to sign in<//></p>
  </section>`;
}
