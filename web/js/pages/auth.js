// Sign in and register.

import { html, useEffect, useState } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { ErrorNote, Input, Link, Notice, useAction, useLoad } from '../ui.js';

// the pages of a signed-out visitor: signing in from one of them goes on to the projects
export const SIGN_IN_PAGES = ['/signin', '/signin/sso', '/register', '/forgot'];

// where to come back to after the institution's sign-in: this page, unless it is a sign-in page
function comeBack() {
  const { pathname, search } = window.location;
  if (SIGN_IN_PAGES.includes(pathname)) return '/';
  return pathname + search;
}

export function SignIn({ reason, onDone }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const { busy, error, run } = useAction();
  const providers = useLoad(() => api.publicGet('/api/auth/providers'), []);
  const p = providers.data;
  const ssoError = new URLSearchParams(window.location.search).get('sso_error');
  const ssoMessage = ssoError && (p?.reasons?.[ssoError] || 'Signing in with your institution\'s account did not work. Try again.');
  const submit = (e) => {
    e.preventDefault();
    run(async () => { await api.signIn(email, password); await onDone(); });
  };
  const sso = p?.oidc && html`<p><a class="button sso" href=${`${p.login_url}?${new URLSearchParams({ next: comeBack() })}`}>Sign in with ${p.display_name}</a></p>`;
  return html`<section class="card">
    <h1>Sign in to LabHub</h1>
    ${reason && html`<${Notice} text=${reason} />`}
    ${ssoMessage && html`<p class="note error" role="alert">${ssoMessage}</p>`}
    ${sso}
    ${p?.oidc && html`<p class="muted">${p.password ? 'Or with your LabHub password:' : 'Heads of the lab may also sign in with a password:'}</p>`}
    <form onSubmit=${submit}>
      <${Input} label="Email" type="email" autocomplete="username" required value=${email} onInput=${setEmail} />
      <${Input} label="Password" type="password" autocomplete="current-password" required value=${password} onInput=${setPassword} />
      <${ErrorNote} error=${error} />
      <button type="submit" class=${p?.oidc ? 'secondary' : ''} disabled=${busy}>${busy ? 'Signing in…' : 'Sign in'}</button>
    </form>
    <p><${Link} href="/forgot">Forgot your password?<//></p>
    ${(!p || p.registration) && html`<p>New here? <${Link} href="/register">Create a student account<//></p>`}
  </section>`;
}

// where the institution's sign-in comes back to: the session cookie is set; take it up and go on
export function SsoLanding({ onDone }) {
  const [failed, setFailed] = useState(null);
  useEffect(() => {
    (async () => {
      try {
        await api.takeUpSession();
        const next = new URLSearchParams(window.location.search).get('next');
        await onDone(next && next.startsWith('/') && !next.startsWith('//') ? next : '/');
      } catch (e) {
        setFailed(e);
      }
    })();
  }, []);
  if (failed) {
    return html`<section class="card"><h1>Sign in to LabHub</h1><${ErrorNote} error=${failed} />
      <p><${Link} href="/signin">Back to sign-in<//></p></section>`;
  }
  return html`<p class="muted" role="status">Signing you in…</p>`;
}

export function Register({ onDone }) {
  const [form, setForm] = useState({ name: '', email: '', password: '' });
  const { busy, error, run } = useAction();
  const set = (key) => (value) => setForm((f) => ({ ...f, [key]: value }));
  const submit = (e) => {
    e.preventDefault();
    run(async () => {
      await api.post('/api/auth/register', form);
      await api.signIn(form.email, form.password);
      await onDone();
    });
  };
  return html`<section class="card">
    <h1>Create an account</h1>
    <p class="muted">New accounts are students; a head can change your role.</p>
    <form onSubmit=${submit}>
      <${Input} label="Name" autocomplete="name" required value=${form.name} onInput=${set('name')} error=${error?.fieldError?.('name')} />
      <${Input} label="Email" type="email" autocomplete="email" required value=${form.email} onInput=${set('email')} error=${error?.fieldError?.('email')} />
      <${Input} label="Password" type="password" autocomplete="new-password" required value=${form.password} onInput=${set('password')}
        error=${error?.fieldError?.('password')} hint="At least 10 characters." />
      <${ErrorNote} error=${error} />
      <button type="submit" disabled=${busy}>${busy ? 'Creating…' : 'Create account'}</button>
    </form>
    <p>Have an account? <${Link} href="/signin">Sign in<//></p>
  </section>`;
}
