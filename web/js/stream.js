// Server-sent events that outlive a server restart. EventSource cannot send headers and gives up
// on any non-200 answer (an expired ticket, a 503 while a service restarts), so this helper does the
// reconnecting itself: a fresh ticket each time, and the last event id as ?last_event_id= so the
// server replays exactly what was missed (docs/architecture.md, "The event path").

import { post } from './api.js';

const MAX_DELAY_MS = 5000;

// open(path, {types, onEvent(type, data, id), onState(state), isFinished()}) → close()
// isFinished() (async) is asked after an error: true stops reconnecting (a job that has ended).
export function openStream(path, { types, onEvent, onState, isFinished }) {
  let source = null;
  let lastId = null;
  let closed = false;
  let delay = 250;
  let timer = null;

  const close = () => {
    closed = true;
    clearTimeout(timer);
    source?.close();
    source = null;
  };

  const retry = async () => {
    source?.close();
    source = null;
    if (closed) return;
    onState?.('reconnecting');
    try {
      if (isFinished && await isFinished()) { close(); onState?.('ended'); return; }
    } catch { /* the server is away: keep trying */ }
    if (closed) return;
    timer = setTimeout(connect, delay);
    delay = Math.min(delay * 2, MAX_DELAY_MS);
  };

  const connect = async () => {
    if (closed) return;
    let ticket;
    try {
      ticket = (await post('/api/auth/sse-ticket')).ticket;
    } catch (error) {
      if (error.status === 401 || error.status === 403 || error.status === 404) { close(); onState?.('ended'); return; }
      retry();
      return;
    }
    if (closed) return;
    const params = new URLSearchParams({ ticket });
    if (lastId) params.set('last_event_id', lastId);
    source = new EventSource(`${path}?${params}`);
    source.addEventListener('open', () => { delay = 250; onState?.('live'); });
    source.addEventListener('error', () => retry());
    for (const type of ['snapshot', ...types]) {
      source.addEventListener(type, (event) => {
        if (event.lastEventId) lastId = event.lastEventId;
        let data = null;
        try { data = JSON.parse(event.data); } catch { return; }
        onEvent(type, data, event.lastEventId);
      });
    }
  };

  connect();
  return close;
}
