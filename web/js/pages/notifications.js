// Notifications: list (all or unread), mark one or all read.

import { html, useState } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { Check, ErrorNote, Link, PagedList, useAction, usePaged, when } from '../ui.js';

// a notification's link is an API path; show the console page that matches it, if any
function pageOf(link) {
  const m = /^\/api\/(jobs|meetings)\/([^/]+)$/.exec(link || '');
  if (!m) return null;
  return m[1] === 'jobs' ? '/jobs' : `/meetings/${m[2]}`;
}

export function Notifications() {
  const [unread, setUnread] = useState(false);
  const paged = usePaged((cursor) => api.get('/api/notifications', { unread: unread ? 'true' : '', cursor, limit: 25 }), [unread]);
  const { error, run } = useAction();
  const markRead = (n) => run(async () => {
    const changed = await api.post(`/api/notifications/${n.id}/read`);
    paged.setItems((all) => all.map((x) => (x.id === n.id ? changed : x)));
  });
  const markAll = () => run(async () => { await api.post('/api/notifications/read-all'); paged.reload(); });
  return html`<section>
    <div class="heading"><h1>Notifications</h1><button type="button" class="secondary" onClick=${markAll}>Mark all read</button></div>
    <${Check} label="Unread only" checked=${unread} onChange=${setUnread} />
    <${ErrorNote} error=${error} />
    <${PagedList} paged=${paged} empty=${unread ? 'Nothing unread.' : 'No notifications.'}>
      <ul class="plain">${paged.items.map((n) => html`<li key=${n.id} class=${`card notification${n.read_at ? '' : ' unread'}`}>
        <div class="row wrap spread"><strong>${n.title}</strong><span class="muted">${when(n.created_at)}${n.read_at ? ' · read' : ' · unread'}</span></div>
        ${n.body && html`<p>${n.body}</p>`}
        <div class="row">
          ${pageOf(n.link) && html`<${Link} href=${pageOf(n.link)}>Open<//>`}
          ${!n.read_at && html`<button type="button" class="small secondary" onClick=${() => markRead(n)} aria-label=${`Mark “${n.title}” read`}>Mark read</button>`}
        </div>
      </li>`)}</ul>
    <//>
  </section>`;
}
