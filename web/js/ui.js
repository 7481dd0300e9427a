// Small shared pieces: fields tied to their errors, status messages, loading/empty/error states,
// cursor paging. User text is always passed as a child (text), never as markup.

import { html, useCallback, useEffect, useRef, useState } from '../vendor/htm-preact.js';
import { navigate } from './router.js';

export { html };

let idCounter = 0;
export const useId = (prefix = 'f') => useRef(`${prefix}-${++idCounter}`).current;

export function Field({ label, error, hint, children: render, id: givenId }) {
  const own = useId();
  const id = givenId || own;
  const errorId = `${id}-error`;
  const hintId = `${id}-hint`;
  const described = [hint ? hintId : null, error ? errorId : null].filter(Boolean).join(' ') || undefined;
  return html`<div class="field">
    <label for=${id}>${label}</label>
    ${render({ id, 'aria-describedby': described, 'aria-invalid': error ? 'true' : undefined })}
    ${hint && html`<small id=${hintId} class="hint">${hint}</small>`}
    ${error && html`<small id=${errorId} class="field-error" role="alert">${error}</small>`}
  </div>`;
}

export function Input({ label, value, onInput, error, hint, type = 'text', ...rest }) {
  return html`<${Field} label=${label} error=${error} hint=${hint}>${(a) =>
    html`<input ...${a} ...${rest} type=${type} value=${value ?? ''} onInput=${(e) => onInput(e.currentTarget.value)} />`}<//>`;
}

export function TextArea({ label, value, onInput, error, hint, ...rest }) {
  return html`<${Field} label=${label} error=${error} hint=${hint}>${(a) =>
    html`<textarea ...${a} ...${rest} value=${value ?? ''} onInput=${(e) => onInput(e.currentTarget.value)}></textarea>`}<//>`;
}

export function Select({ label, value, onChange, options, error, hint, ...rest }) {
  return html`<${Field} label=${label} error=${error} hint=${hint}>${(a) =>
    html`<select ...${a} ...${rest} value=${value ?? ''} onChange=${(e) => onChange(e.currentTarget.value)}>
      ${options.map(([v, text]) => html`<option value=${v} selected=${v === value}>${text}</option>`)}
    </select>`}<//>`;
}

export function Check({ label, checked, onChange }) {
  const id = useId();
  return html`<div class="check"><input id=${id} type="checkbox" checked=${checked} onChange=${(e) => onChange(e.currentTarget.checked)} /><label for=${id}>${label}</label></div>`;
}

// an error banner announced to screen readers; problem+json detail as text
export function ErrorNote({ error }) {
  if (!error) return null;
  const text = typeof error === 'string' ? error : error.message;
  return html`<p class="note error" role="alert"><strong>Error${error.code ? ` (${error.code})` : ''}: </strong>${text}</p>`;
}

export function Notice({ text }) {
  return html`<p class="note ok" role="status" aria-live="polite">${text || ''}</p>`;
}

export const Loading = ({ what = 'Loading' }) => html`<p class="muted" role="status">${what}…</p>`;
export const Empty = ({ text }) => html`<p class="muted empty">${text}</p>`;

export function Link({ href, children, ...rest }) {
  return html`<a href=${href} ...${rest} onClick=${(e) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(href);
  }}>${children}</a>`;
}

// a list read page by page with the API's cursor: {items, loading, error, more, loadMore, reload}
export function usePaged(load, deps) {
  const [state, setState] = useState({ items: [], cursor: null, loading: true, error: null, done: false });
  const generation = useRef(0);
  const fetchPage = useCallback(async (cursor, replace) => {
    const mine = ++generation.current;
    setState((s) => ({ ...s, loading: true, error: null, ...(replace ? { items: [] } : {}) }));
    try {
      const page = await load(cursor);
      if (mine !== generation.current) return;
      setState((s) => ({
        items: replace ? page.items : [...s.items, ...page.items],
        cursor: page.next_cursor, loading: false, error: null, done: !page.next_cursor,
      }));
    } catch (error) {
      if (mine === generation.current) setState((s) => ({ ...s, loading: false, error }));
    }
  }, deps);
  useEffect(() => { fetchPage(null, true); }, [fetchPage]);
  return {
    ...state,
    loadMore: () => fetchPage(state.cursor, false),
    reload: () => fetchPage(null, true),
    setItems: (update) => setState((s) => ({ ...s, items: update(s.items) })),
  };
}

export function PagedList({ paged, empty, children }) {
  return html`
    ${paged.error && html`<${ErrorNote} error=${paged.error} />`}
    ${!paged.loading && !paged.error && paged.items.length === 0 && html`<${Empty} text=${empty} />`}
    ${children}
    ${paged.loading && html`<${Loading} />`}
    ${!paged.loading && !paged.done && html`<button type="button" class="secondary" onClick=${paged.loadMore}>Load more</button>`}`;
}

// an async action with busy/error state, for buttons and forms
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const run = useCallback(async (action) => {
    setBusy(true);
    setError(null);
    try {
      return await action();
    } catch (e) {
      setError(e);
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run, setError };
}

export function useLoad(load, deps) {
  const [state, setState] = useState({ data: null, loading: true, error: null });
  const reload = useCallback(async () => {
    setState((s) => ({ ...s, loading: true, error: null }));
    try {
      setState({ data: await load(), loading: false, error: null });
    } catch (error) {
      setState({ data: null, loading: false, error });
    }
  }, deps);
  useEffect(() => { reload(); }, [reload]);
  return { ...state, reload, set: (data) => setState((s) => ({ ...s, data })) };
}

export const when = (iso) => (iso ? new Date(iso).toLocaleString() : '—');
export const day = (iso) => (iso ? String(iso).slice(0, 10) : '—');

// sizes in binary units, as operating systems count memory and disks: 22.1 GiB, not 23686492160
export function bytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}

// "3 hours ago" beside the date and time, for people; the exact moment in the title
const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const STEPS = [['year', 31536000], ['month', 2592000], ['week', 604800], ['day', 86400], ['hour', 3600], ['minute', 60], ['second', 1]];
export function ago(iso, now = Date.now()) {
  if (!iso) return '—';
  const seconds = (new Date(iso).getTime() - now) / 1000;
  const [unit, size] = STEPS.find(([, s]) => Math.abs(seconds) >= s) || ['second', 1];
  return RELATIVE.format(Math.round(seconds / size), unit);
}
export function Moment({ iso }) {
  if (!iso) return '—';
  return html`<time datetime=${iso} title=${iso}>${when(iso)} (${ago(iso)})</time>`;
}

// a cell's value: numbers to six significant digits (whole ones grouped), objects as JSON
export function fmt(value) {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'number') return Number.isInteger(value) ? value.toLocaleString() : String(Number(value.toPrecision(6)));
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

// a count for people: 5,000,000 · 1.2 million past ten million
export function count(n) {
  if (n === null || n === undefined) return '—';
  return Math.abs(n) >= 1e7 ? new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 }).format(n) : n.toLocaleString();
}

export function Status({ status }) {
  // the word is always shown: colour is never the only signal
  return html`<span class=${`status status-${status}`}>${status}</span>`;
}

export function Progress({ done, total, label }) {
  const hasTotal = total !== null && total !== undefined && total > 0;
  return hasTotal
    ? html`<progress aria-label=${label} max=${total} value=${Math.min(done ?? 0, total)}></progress>`
    : html`<progress aria-label=${label}></progress>`;
}
