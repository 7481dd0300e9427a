// A job shown live: status, progress bar, stage and rows, error code and message, cancel and retry.
// Driven by the job's event stream, which reconnects with the last event id (and so survives a
// server restart) and stops at the job's end.

import { html, useEffect, useState } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { openStream } from '../stream.js';
import { ErrorNote, Link, Progress, Status, useAction } from '../ui.js';

const FINAL = new Set(['succeeded', 'failed', 'cancelled']);
export const isFinal = (status) => FINAL.has(status);

export function useLiveJob(jobId, initial) {
  const [job, setJob] = useState(initial || { status: 'queued' });
  const [link, setLink] = useState('connecting');
  const watching = jobId && !isFinal(job.status);
  useEffect(() => {
    if (!watching) return undefined;
    const close = openStream(`/api/jobs/${jobId}/events`, {
      types: ['status', 'progress'],
      onState: setLink,
      onEvent: (type, data) => {
        if (type === 'progress') {
          setJob((j) => ({ ...j, progress: { stage: data.stage, done: data.done, total: data.total, message: data.message } }));
        } else {
          setJob((j) => ({ ...j, ...data }));
          if (isFinal(data.status)) close();
        }
      },
      isFinished: async () => {
        const now = await api.get(`/api/jobs/${jobId}`);
        if (isFinal(now.status)) { setJob((j) => ({ ...j, ...now })); return true; }
        return false;
      },
    });
    return close;
  }, [jobId, watching]);
  return { job, setJob, link };
}

function stageText(progress) {
  if (!progress) return '';
  const count = progress.done !== null && progress.done !== undefined
    ? ` · ${Number(progress.done).toLocaleString()}${progress.total ? ` of ${Number(progress.total).toLocaleString()}` : ''}`
    : '';
  return `${progress.stage || ''}${count}${progress.message ? ` · ${progress.message}` : ''}`;
}

function resultText(job) {
  const rows = job.result?.rows;
  return typeof rows === 'number' ? `${rows.toLocaleString()} rows` : '';
}

// label: what the row is (a file name, "plot of …"); extra: shown when done (links to results)
export function JobRow({ jobId, label, initial, canChange = true, extra, onStatus }) {
  const { job, setJob, link } = useLiveJob(jobId, initial);
  useEffect(() => { onStatus?.(job.status); }, [job.status]);
  const { busy, error, run } = useAction();
  const act = (what) => run(async () => {
    const changed = await api.post(`/api/jobs/${jobId}/${what}`);
    setJob((j) => ({ ...j, ...changed }));
  });
  const running = !isFinal(job.status);
  const progress = job.progress;
  return html`<div class="job" data-job=${jobId} data-status=${job.status}>
    <div class="row wrap spread">
      <span class="name">${label}</span>
      <${Status} status=${job.status} />
    </div>
    ${running && html`<${Progress} label=${`Progress of ${label}`} done=${progress?.done} total=${progress?.total} />`}
    <p class="meta" aria-live="polite">${running ? stageText(progress) : resultText(job)}${running && link === 'reconnecting' ? ' · reconnecting…' : ''}${job.attempt > 1 ? ` · attempt ${job.attempt}` : ''}</p>
    ${job.status === 'failed' && job.error && html`<p class="note error" role="alert"><strong>${job.error.code}</strong>: ${job.error.message}</p>`}
    ${job.status === 'succeeded' && extra && extra(job)}
    <${ErrorNote} error=${error} />
    ${canChange && html`<div class="row">
      ${running && html`<button type="button" class="small secondary" disabled=${busy || job.cancel_requested} onClick=${() => act('cancel')} aria-label=${`Cancel ${label}`}>Cancel</button>`}
      ${(job.status === 'failed' || job.status === 'cancelled') && html`<button type="button" class="small secondary" disabled=${busy} onClick=${() => act('retry')} aria-label=${`Retry ${label}`}>Retry</button>`}
    </div>`}
  </div>`;
}

export function DatasetLinks({ ids }) {
  if (!ids?.length) return null;
  return html`<p class="row wrap">${ids.map((id, i) => html`<${Link} key=${id} href=${`/datasets/${id}`}>Open dataset${ids.length > 1 ? ` ${i + 1}` : ''}<//>`)}</p>`;
}
