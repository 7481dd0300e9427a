// Client-side routes on the History API; the server answers every such path with the index page.

import { useEffect, useState } from '../vendor/htm-preact.js';

const listeners = new Set();

export function navigate(href, { replace = false } = {}) {
  if (href === location.pathname + location.search) return;
  history[replace ? 'replaceState' : 'pushState'](null, '', href);
  for (const listener of listeners) listener();
  window.scrollTo(0, 0);
}

window.addEventListener('popstate', () => { for (const listener of listeners) listener(); });

export function useLocation() {
  const [where, setWhere] = useState(() => ({ path: location.pathname, query: new URLSearchParams(location.search) }));
  useEffect(() => {
    const update = () => setWhere({ path: location.pathname, query: new URLSearchParams(location.search) });
    listeners.add(update);
    return () => listeners.delete(update);
  }, []);
  return where;
}

// match('/projects/:pid/:tab?', '/projects/abc/records') → {pid: 'abc', tab: 'records'}
export function match(pattern, path) {
  const want = pattern.split('/').filter(Boolean);
  const got = path.split('/').filter(Boolean);
  const params = {};
  for (let i = 0; i < Math.max(want.length, got.length); i += 1) {
    const w = want[i];
    if (w === undefined) return null;
    const optional = w.endsWith('?');
    const name = w.replace(/^:/, '').replace(/\?$/, '');
    if (got[i] === undefined) {
      if (optional) continue;
      return null;
    }
    if (w.startsWith(':')) params[name] = decodeURIComponent(got[i]);
    else if (w !== got[i]) return null;
  }
  return params;
}
