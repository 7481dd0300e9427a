// "Publishing and archiving" on a dataset's page: the version shown as an RO-Crate, a BagIt bag or
// DataCite JSON; publishing it with a licence and a description (a public page, /d/{slug}, that
// needs no sign-in), and unpublishing.

import { html, useState } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { ErrorNote, Input, Notice, Select, TextArea, useAction, useLoad } from '../ui.js';

const LICENCES = [
  ['CC-BY-4.0', 'CC BY 4.0 (attribution)'], ['CC0-1.0', 'CC0 1.0 (public domain)'], ['CC-BY-SA-4.0', 'CC BY-SA 4.0'],
  ['ODbL-1.0', 'Open Database Licence 1.0'], ['other', 'Another (SPDX id or URL)…'],
];

function PublishForm({ dataset, onDone }) {
  const [licence, setLicence] = useState('CC-BY-4.0');
  const [other, setOther] = useState('');
  const [description, setDescription] = useState('');
  const [title, setTitle] = useState(dataset.name);
  const { busy, error, run } = useAction();
  const submit = (e) => {
    e.preventDefault();
    run(async () => {
      const made = await api.post(`/api/datasets/${dataset.id}/publication`, {
        version: dataset.version, license: licence === 'other' ? other : licence, description, title,
      });
      onDone(made);
    });
  };
  return html`<form class="card" onSubmit=${submit} aria-label="Publish this version">
    <h3>Publish version ${dataset.version}</h3>
    <p class="muted">Anyone with the link can then read its description, statistics and files, without signing in. Leads and heads publish.</p>
    <div class="row wrap">
      <${Input} label="Title" value=${title} onInput=${setTitle} error=${error?.fieldError?.('title')} />
      <${Select} label="Licence" value=${licence} onChange=${setLicence} options=${LICENCES} />
      ${licence === 'other' && html`<${Input} label="Licence (SPDX id or URL)" value=${other} onInput=${setOther} error=${error?.fieldError?.('license')} />`}
    </div>
    <${TextArea} label="Description" value=${description} onInput=${setDescription} error=${error?.fieldError?.('description')} hint="what the data is, how it was measured, what to cite" />
    <${ErrorNote} error=${error} />
    <button type="submit" disabled=${busy || !description.trim()}>${busy ? 'Publishing…' : 'Publish'}</button>
  </form>`;
}

export function Publishing({ dataset, onChange }) {
  const d = dataset;
  const published = useLoad(() => api.get(`/api/datasets/${d.id}/publications`), [d.id, d.version, d.published?.slug]);
  const downloads = useAction();
  const unpublish = useAction();
  const [message, setMessage] = useState('');
  const [publishing, setPublishing] = useState(false);
  const mine = (published.data || []).find((p) => p.version === d.version);
  const stem = `${d.name.replace(/\.[^.]+$/, '')}-v${d.version}`;
  const get = (format, name) => downloads.run(() => api.download(`/api/datasets/${d.id}/export`, { format, version: d.version }, name));
  return html`<section aria-labelledby="publish-h">
    <h2 id="publish-h">Publishing and archiving</h2>
    <div class="row wrap">
      <button type="button" class="secondary" onClick=${() => get('ro-crate', `${stem}.crate.zip`)}>Download RO-Crate</button>
      <button type="button" class="secondary" onClick=${() => get('bagit', `${stem}-bag.zip`)}>Download BagIt bag</button>
      <button type="button" class="secondary" onClick=${() => get('datacite', `${stem}.datacite.json`)}>DataCite JSON</button>
    </div>
    <${ErrorNote} error=${downloads.error} />
    <${Notice} text=${message} />
    ${mine
      ? html`<p class="note ok" role="status" data-testid="published">Version ${mine.version} is published at <a href=${mine.url.replace(/^https?:\/\/[^/]+/, '')} target="_blank" rel="noopener">${mine.url}</a> under ${mine.license.replace('https://spdx.org/licenses/', '')}.</p>
        <button type="button" class="secondary" disabled=${unpublish.busy} onClick=${() => unpublish.run(async () => {
          await api.del(`/api/datasets/${d.id}/publication`, { version: d.version });
          setMessage(`Version ${d.version} is no longer public.`);
          onChange();
        })}>Unpublish</button>
        <${ErrorNote} error=${unpublish.error} />`
      : publishing
        ? html`<${PublishForm} dataset=${d} onDone=${(made) => { setPublishing(false); setMessage(`Published at ${made.url}`); onChange(); }} />`
        : html`<button type="button" onClick=${() => setPublishing(true)}>Publish this version…</button>`}
  </section>`;
}
