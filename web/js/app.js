// The console's shell: session, header and navigation, routes.

import { html, render, useEffect, useState } from '../vendor/htm-preact.js';
import * as api from './api.js';
import { match, navigate, useLocation } from './router.js';
import { isHead, Session } from './session.js';
import { openStream } from './stream.js';
import { Link, Loading } from './ui.js';
import { SIGN_IN_PAGES, SignIn, Register, SsoLanding } from './pages/auth.js';
import { DeviceApproval } from './pages/device.js';
import { ForgotPassword, ResetPassword } from './pages/reset.js';
import { Projects } from './pages/projects.js';
import { ProjectPage } from './pages/project.js';
import { DatasetPage } from './pages/datasets.js';
import { Jobs } from './pages/jobs.js';
import { Notifications } from './pages/notifications.js';
import { MeetingPage } from './pages/meetings.js';
import { AdminUsers, AdminSystem } from './pages/admin.js';
import { Account } from './pages/account.js';


function Bell() {
  const [unread, setUnread] = useState(null);
  useEffect(() => openStream('/api/notifications/events', {
    types: ['notification', 'unread'],
    onEvent: (type, data) => {
      if (type === 'snapshot' || type === 'unread') setUnread(data.unread);
      else if (type === 'notification') setUnread((n) => (n ?? 0) + 1);
    },
  }), []);
  const label = unread === null ? 'Notifications' : `Notifications, ${unread} unread`;
  return html`<${Link} href="/notifications" class="bell" aria-label=${label} data-unread=${unread ?? ''}>
    <svg aria-hidden="true" viewBox="0 0 24 24" width="20" height="20"><path fill="currentColor" d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3a1.5 1.5 0 0 0-3 0v1.16A7 7 0 0 0 5 11v5l-2 2v1h18v-1Z"/></svg>
    <span class="count" aria-hidden="true">${unread ?? '…'}</span>
  <//>`;
}

function Header({ user, onSignOut, path }) {
  const current = (prefix) => (path === prefix || (prefix !== '/' && path.startsWith(prefix)) ? 'page' : undefined);
  return html`<header class="top">
    <a class="skip" href="#main">Skip to content</a>
    <${Link} href="/" class="brand">LabHub<//>
    <nav aria-label="Main">
      <${Link} href="/" aria-current=${path === '/' || path.startsWith('/projects') ? 'page' : undefined}>Projects<//>
      <${Link} href="/jobs" aria-current=${current('/jobs')}>Jobs<//>
      ${isHead(user) && html`<${Link} href="/admin/users" aria-current=${current('/admin/users')}>Users<//>`}
      ${isHead(user) && html`<${Link} href="/admin/system" aria-current=${current('/admin/system')}>System<//>`}
    </nav>
    <div class="who">
      <${Bell} />
      <${Link} href="/account" class="me" aria-current=${current('/account')}>${user.name}<span class="role">${user.role}</span><//>
      <button type="button" class="secondary" onClick=${onSignOut}>Sign out</button>
    </div>
  </header>`;
}

function NotFound() {
  return html`<section><h1>Not found</h1><p>There is no page here. <${Link} href="/">Back to projects<//></p></section>`;
}

function Routes({ path, query, user }) {
  let m;
  if (path === '/' || path === '/projects') return html`<${Projects} />`;
  if ((m = match('/projects/:pid/:tab?', path))) return html`<${ProjectPage} pid=${m.pid} tab=${m.tab || 'overview'} />`;
  if ((m = match('/datasets/:id', path))) return html`<${DatasetPage} id=${m.id} version=${query.get('version')} />`;
  if ((m = match('/meetings/:id', path))) return html`<${MeetingPage} id=${m.id} />`;
  if (path === '/jobs') return html`<${Jobs} />`;
  if (path === '/notifications') return html`<${Notifications} />`;
  if (path === '/account') return html`<${Account} />`;
  if (path === '/device') return html`<${DeviceApproval} code=${query.get('code')} />`;
  if (path === '/forgot') return html`<${ForgotPassword} />`;
  if (path === '/admin/users' && isHead(user)) return html`<${AdminUsers} />`;
  if (path === '/admin/system' && isHead(user)) return html`<${AdminSystem} />`;
  return html`<${NotFound} />`;
}

function App() {
  const { path, query } = useLocation();
  const [user, setUser] = useState(undefined); // undefined: still finding out; null: signed out
  const [reason, setReason] = useState(null);

  useEffect(() => api.onSignedOut(() => {
    setUser(null);
    setReason('Your session has ended. Sign in again.');
  }), []);

  useEffect(() => {
    (async () => {
      try {
        if (!api.mayHaveSession()) throw new Error('never signed in here');
        await api.refresh();
        setUser(await api.get('/api/auth/me'));
      } catch {
        setUser(null);
        setReason(null); // no session yet is not an ended one
      }
    })();
  }, []);

  useEffect(() => {
    const title = document.querySelector('main h1')?.textContent;
    document.title = title ? `${title} · LabHub` : 'LabHub';
  });

  const signedIn = async (next) => {
    setReason(null);
    setUser(await api.get('/api/auth/me'));
    if (typeof next === 'string') navigate(next, { replace: true });
    else if (SIGN_IN_PAGES.includes(path)) navigate('/', { replace: true });
  };

  // a reset link works whoever is signed in here (the reset signs every session out anyway)
  if (path === '/reset') return html`<main id="main" class="narrow"><${ResetPassword} /></main>`;
  // back from the institution's sign-in: whoever was signed in here, the new session is the one
  if (path === '/signin/sso') return html`<main id="main" class="narrow"><${SsoLanding} onDone=${signedIn} /></main>`;
  if (user === undefined) return html`<main id="main"><${Loading} what="Opening LabHub" /></main>`;
  if (user === null) {
    return html`<main id="main" class="narrow">
      ${path === '/register' ? html`<${Register} onDone=${signedIn} />`
        : path === '/forgot' ? html`<${ForgotPassword} />`
        : html`<${SignIn} reason=${reason} onDone=${signedIn} />`}
    </main>`;
  }
  const signOut = async () => {
    await api.signOut();
    setReason('You have signed out.');
    navigate('/signin', { replace: true });
  };
  return html`<${Session.Provider} value=${{ user, setUser }}>
    <${Header} user=${user} onSignOut=${signOut} path=${path} />
    <main id="main" tabindex="-1"><${Routes} path=${path} query=${query} user=${user} /></main>
  <//>`;
}

const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
