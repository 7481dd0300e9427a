// My jobs (heads: everyone's), by status, kind and project, newest first, each live.

import { html, useState } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { isHead, useSession } from '../session.js';
import { Check, Input, Link, PagedList, Select, usePaged, when } from '../ui.js';
import { JobRow } from './jobrow.js';

const STATUSES = [['', 'Any status'], ['queued', 'Queued'], ['running', 'Running'], ['succeeded', 'Succeeded'], ['failed', 'Failed'], ['cancelled', 'Cancelled']];

export function Jobs() {
  const { user } = useSession();
  const [filters, setFilters] = useState({ status: '', kind: '', all: false });
  const set = (key) => (value) => setFilters((f) => ({ ...f, [key]: value }));
  const paged = usePaged(
    (cursor) => api.get('/api/jobs', { status: filters.status, kind: filters.kind, all: filters.all ? 'true' : '', cursor, limit: 25 }),
    [filters.status, filters.kind, filters.all],
  );
  return html`<section>
    <h1>Jobs</h1>
    <form class="filters" role="search" aria-label="Filter jobs" onSubmit=${(e) => e.preventDefault()}>
      <${Select} label="Status" value=${filters.status} onChange=${set('status')} options=${STATUSES} />
      <${Input} label="Kind" value=${filters.kind} onInput=${set('kind')} hint="e.g. ingest, plot" />
      ${isHead(user) && html`<${Check} label="Everyone's jobs" checked=${filters.all} onChange=${set('all')} />`}
    </form>
    <${PagedList} paged=${paged} empty="No jobs.">
      <ul class="jobs" aria-label="Jobs">${paged.items.map((job) => html`<li key=${job.id}>
        <${JobRow} jobId=${job.id} label=${`${job.kind} · ${when(job.created_at)}`} initial=${job} />
        <p class="meta"><${Link} href=${`/projects/${job.project_id}`}>Open the job's project<//></p>
      </li>`)}</ul>
    <//>
  </section>`;
}
