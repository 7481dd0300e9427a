// The only module that talks to the server. The access token lives in this module's memory only;
// the refresh token is an HttpOnly cookie the server sets when we send X-LabHub-Session: cookie.

const SESSION = { 'X-LabHub-Session': 'cookie' };
let accessToken = null;
let refreshing = null;
const signedOutListeners = new Set();

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `request failed (${status})`);
    this.status = status;
    this.code = problem.code || 'error';
    this.errors = problem.errors || [];
    this.problem = problem;
  }
  // the message for one field, from problem+json errors[].path ("$.data.x" → "data.x")
  fieldError(path) {
    const hit = this.errors.find((e) => e.path === path || e.path === `$.${path}` || e.path?.startsWith(`$.${path}.`) || e.path?.startsWith(`$.${path}[`));
    return hit ? hit.message : null;
  }
}

export function onSignedOut(listener) {
  signedOutListeners.add(listener);
  return () => signedOutListeners.delete(listener);
}

// whether this browser signed in before: a hint only (no secret), so that a first visit does not
// ask for a refresh that can only fail
const HINT = 'labhub.signed-in';
export const mayHaveSession = () => localStorage.getItem(HINT) === '1';

function signedOut() {
  accessToken = null;
  localStorage.removeItem(HINT);
  for (const listener of signedOutListeners) listener();
}

export const isSignedIn = () => accessToken !== null;

async function problemOf(response) {
  try {
    const body = await response.json();
    if (body && typeof body === 'object') return body;
  } catch { /* not JSON */ }
  return { detail: `${response.status} ${response.statusText}` };
}

async function networkError() {
  return new ApiError(0, { code: 'offline', detail: 'LabHub cannot be reached; check the connection and try again' });
}

export async function signIn(email, password) {
  const response = await fetch('/api/auth/login', {
    method: 'POST', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', ...SESSION },
    body: JSON.stringify({ email, password }),
  }).catch(() => null);
  if (!response) throw await networkError();
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  accessToken = (await response.json()).access_token;
  localStorage.setItem(HINT, '1');
}

// after the institution's sign-in set the session cookie: from now on this browser has a session
export async function takeUpSession() {
  localStorage.setItem(HINT, '1');
  await refresh();
}

// a route that needs no session (what the sign-in page shows)
export async function publicGet(path) {
  const response = await fetch(path, { credentials: 'same-origin' }).catch(() => null);
  if (!response) throw await networkError();
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  return response.json();
}

// a new access token from the session cookie; one request at a time however many callers wait
export function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      const response = await fetch('/api/auth/refresh', { method: 'POST', credentials: 'same-origin', headers: SESSION }).catch(() => null);
      if (!response) throw await networkError();
      if (!response.ok) {
        const error = new ApiError(response.status, await problemOf(response));
        if (response.status === 401) signedOut();
        throw error;
      }
      accessToken = (await response.json()).access_token;
    })().finally(() => { refreshing = null; });
  }
  return refreshing;
}

export async function signOut() {
  await fetch('/api/auth/logout', { method: 'POST', credentials: 'same-origin', headers: SESSION }).catch(() => null);
  signedOut();
}

// every session of the person ends, this one included (the server also clears this cookie)
export async function signOutEverywhere() {
  await send('POST', '/api/auth/logout-all', { headers: SESSION });
  signedOut();
}

function url(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === '') continue;
    for (const one of Array.isArray(value) ? value : [value]) params.append(key, String(one));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

// fetch with the access token; a 401 refreshes once and tries again
export async function send(method, path, { json, body, query, headers = {} } = {}) {
  const attempt = async () => {
    const init = { method, headers: { ...headers }, credentials: 'same-origin' };
    if (accessToken) init.headers.Authorization = `Bearer ${accessToken}`;
    if (json !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(json);
    } else if (body !== undefined) init.body = body;
    return fetch(url(path, query), init).catch(() => null);
  };
  let response = await attempt();
  if (response && response.status === 401) {
    await refresh();
    response = await attempt();
  }
  if (!response) throw await networkError();
  if (!response.ok) {
    const error = new ApiError(response.status, await problemOf(response));
    if (response.status === 401) signedOut();
    throw error;
  }
  return response;
}

export async function get(path, query) {
  const response = await send('GET', path, { query });
  return response.status === 204 ? null : response.json();
}
export async function post(path, json, query) {
  const response = await send('POST', path, { json: json ?? {}, query });
  return response.status === 204 ? null : response.json();
}
export async function patch(path, json) {
  return (await send('PATCH', path, { json })).json();
}
export async function del(path, query) {
  await send('DELETE', path, { query });
}

// a resumable upload (tus 1.0 at /api/uploads) with byte progress; resolves to the upload's id, to
// be named in a JSON body (documents: upload_id, ingestions: upload_ids). A dropped connection is
// retried and goes on from the offset the server has; the same file picked again after a reload
// resumes too (tus-js-client keeps the upload's URL, never a token, in localStorage)
export async function resumable(file, onProgress) {
  const { Upload } = await import('../vendor/tus.js');
  return new Promise((resolve, reject) => {
    const upload = new Upload(file, {
      endpoint: '/api/uploads',
      chunkSize: 16 * 1024 * 1024,
      retryDelays: [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000],
      metadata: { filename: file.name, content_type: file.type || 'application/octet-stream' },
      removeFingerprintOnSuccess: true,
      onBeforeRequest: async (request) => {
        if (refreshing) await refreshing.catch(() => null);
        if (accessToken) request.setHeader('Authorization', `Bearer ${accessToken}`);
      },
      onShouldRetry: (error, attempt, options) => {
        const status = error.originalResponse ? error.originalResponse.getStatus() : 0;
        if (status === 401 && attempt === 0) {
          refresh().catch(() => null); // the next request waits for it (onBeforeRequest)
          return true;
        }
        // no answer (the network), a restarting server, or a competing request: try again
        return status === 0 || status === 409 || status === 423 || status >= 500;
      },
      onProgress: (loaded, total) => onProgress?.(loaded, total),
      onSuccess: () => resolve(upload.url.split('/').pop()),
      onError: (error) => {
        const response = error.originalResponse;
        if (!response) return networkError().then(reject);
        let problem = {};
        try { problem = JSON.parse(response.getBody() || '{}'); } catch { /* not JSON */ }
        if (response.getStatus() === 401) signedOut();
        return reject(new ApiError(response.getStatus(), problem));
      },
    });
    upload.findPreviousUploads().then((previous) => {
      if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
      upload.start();
    }, () => upload.start());
  });
}

// a response body as a blob: URL (images, downloads), since links cannot carry the token
export async function blobUrl(path, query) {
  const response = await send('GET', path, { query });
  return URL.createObjectURL(await response.blob());
}

function filenameOf(response, fallback) {
  const header = response.headers.get('Content-Disposition') || '';
  const star = /filename\*=UTF-8''([^;]+)/i.exec(header);
  if (star) return decodeURIComponent(star[1]);
  const plain = /filename="?([^";]+)"?/i.exec(header);
  return plain ? plain[1] : fallback;
}

// a blob saved as a file by the browser
export function saveBlob(blob, name) {
  const href = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = href;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(href), 60_000);
}

export async function download(path, query, fallback = 'download') {
  const response = await send('GET', path, { query });
  saveBlob(await response.blob(), filenameOf(response, fallback));
}
