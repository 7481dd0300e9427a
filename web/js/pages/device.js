// Approving a command-line login (labhub-client login --browser): the code it printed, what it asks
// for, and Approve or Deny.

import { html, useState } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { ErrorNote, Input, useAction, when } from '../ui.js';

export function DeviceApproval({ code: given }) {
  const [code, setCode] = useState(given || '');
  const [request, setRequest] = useState(null);
  const look = useAction();
  const answer = useAction();
  const find = (e) => {
    e?.preventDefault();
    look.run(async () => setRequest(await api.get(`/api/auth/device/${encodeURIComponent(code.trim())}`)));
  };
  const decide = (what) => answer.run(async () => setRequest(await api.post(`/api/auth/device/${encodeURIComponent(request.user_code)}/${what}`)));
  return html`<section class="narrow">
    <h1>Sign in a command-line client</h1>
    <p class="muted">Type the code that <code>labhub-client login --browser</code> printed.</p>
    <form onSubmit=${find}>
      <${Input} label="Code" value=${code} onInput=${setCode} required autocomplete="off" spellcheck="false" hint="Eight letters, like WDJB-MJHT." />
      <${ErrorNote} error=${look.error} />
      <button type="submit" disabled=${look.busy}>${look.busy ? 'Looking…' : 'Continue'}</button>
    </form>
    ${request && html`<section class="card device-request" aria-labelledby="device-what">
      <h2 id="device-what">${request.client_name} on ${request.machine}</h2>
      <dl class="pairs">
        <dt>Code</dt><dd>${request.user_code}</dd>
        <dt>Asked from</dt><dd>${request.client_address}</dd>
        <dt>Scopes</dt><dd>${request.scopes.join(', ')}</dd>
        <dt>Asked at</dt><dd>${when(request.requested_at)}</dd>
        <dt>Code expires</dt><dd>${when(request.expires_at)}</dd>
      </dl>
      <p>${request.grants}</p>
      <p class="muted">Approve only if you started this login yourself, on that machine: whoever holds the client gets the token.</p>
      ${request.status === 'pending' && html`<div class="row">
        <button type="button" onClick=${() => decide('approve')} disabled=${answer.busy}>Approve</button>
        <button type="button" class="secondary" onClick=${() => decide('deny')} disabled=${answer.busy}>Deny</button>
      </div>`}
      ${request.status === 'approved' && html`<p role="status" class="note ok">Approved. The client receives its token now; you can close this page. Revoke it any time under Account → Tokens.</p>`}
      ${request.status === 'denied' && html`<p role="status">Denied. The client gets no token.</p>`}
      ${!['pending', 'approved', 'denied'].includes(request.status) && html`<p role="status">This code was used already.</p>`}
      <${ErrorNote} error=${answer.error} />
    </section>`}
  </section>`;
}
