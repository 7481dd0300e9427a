// Sign in and register.

import { html, useState } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { ErrorNote, Input, Link, Notice, useAction } from '../ui.js';

export function SignIn({ reason, onDone }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const { busy, error, run } = useAction();
  const submit = (e) => {
    e.preventDefault();
    run(async () => { await api.signIn(email, password); await onDone(); });
  };
  return html`<section class="card">
    <h1>Sign in to LabHub</h1>
    ${reason && html`<${Notice} text=${reason} />`}
    <form onSubmit=${submit}>
      <${Input} label="Email" type="email" autocomplete="username" required value=${email} onInput=${setEmail} />
      <${Input} label="Password" type="password" autocomplete="current-password" required value=${password} onInput=${setPassword} />
      <${ErrorNote} error=${error} />
      <button type="submit" disabled=${busy}>${busy ? 'Signing in…' : 'Sign in'}</button>
    </form>
    <p><${Link} href="/forgot">Forgot your password?<//></p>
    <p>New here? <${Link} href="/register">Create a student account<//></p>
  </section>`;
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
