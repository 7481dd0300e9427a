// Engagement: students log time and see their own entries; leads and heads see the per-student
// summary by week or month, with a plot and a CSV export.

import { html, useState } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { useSession } from '../session.js';
import { ErrorNote, Input, Notice, PagedList, Select, TextArea, day, useAction, useLoad, usePaged } from '../ui.js';
import { PlotImage } from './datasets.js';
import { JobRow } from './jobrow.js';

const ACTIVITIES = [['lab_work', 'Lab work'], ['analysis', 'Analysis'], ['writing', 'Writing'], ['reading', 'Reading'], ['meeting', 'Meeting'], ['other', 'Other']];
const today = () => new Date().toISOString().slice(0, 10);
const hours = (minutes) => `${Math.floor(minutes / 60)} h ${minutes % 60} min`;

function LogTime({ pid, onLogged }) {
  const [form, setForm] = useState({ date: today(), minutes: 60, activity: 'lab_work', notes: '' });
  const { busy, error, run } = useAction();
  const [message, setMessage] = useState('');
  const set = (key) => (value) => setForm((f) => ({ ...f, [key]: value }));
  const submit = (e) => {
    e.preventDefault();
    run(async () => {
      await api.post(`/api/projects/${pid}/engagement`, { ...form, minutes: Number(form.minutes) });
      setMessage(`Logged ${hours(Number(form.minutes))} on ${form.date}.`);
      onLogged();
    });
  };
  return html`<form class="card" onSubmit=${submit} aria-label="Log time">
    <h3>Log time</h3>
    <div class="row wrap">
      <${Input} label="Day" type="date" required value=${form.date} onInput=${set('date')} error=${error?.fieldError?.('date')} />
      <${Input} label="Minutes" type="number" min="1" required value=${form.minutes} onInput=${set('minutes')} error=${error?.fieldError?.('minutes')} />
      <${Select} label="Activity" value=${form.activity} onChange=${set('activity')} options=${ACTIVITIES} error=${error?.fieldError?.('activity')} />
    </div>
    <${TextArea} label="Notes" value=${form.notes} onInput=${set('notes')} error=${error?.fieldError?.('notes')} />
    <${ErrorNote} error=${error} /><${Notice} text=${message} />
    <button type="submit" disabled=${busy}>Log time</button>
  </form>`;
}

function Summary({ pid }) {
  const [group, setGroup] = useState('week');
  const summary = useLoad(() => api.get('/api/engagement/summary', { project_id: pid, group }), [pid, group]);
  const [plot, setPlot] = useState(null);
  const [plotDone, setPlotDone] = useState(false);
  const action = useAction();
  const makePlot = () => action.run(async () => { setPlotDone(false); setPlot(await api.post(`/api/projects/${pid}/engagement/visualizations`, { group })); });
  const s = summary.data;
  return html`<section aria-labelledby="summary-h">
    <h3 id="summary-h">Summary per student</h3>
    <div class="row wrap">
      <${Select} label="Group by" value=${group} onChange=${setGroup} options=${[['week', 'Week'], ['month', 'Month']]} />
      <button type="button" class="secondary" onClick=${() => action.run(() => api.download('/api/engagement/summary', { project_id: pid, group, format: 'csv' }, 'engagement.csv'))}>Export CSV</button>
      <button type="button" class="secondary" onClick=${makePlot}>Plot</button>
    </div>
    <${ErrorNote} error=${summary.error || action.error} />
    ${s && html`<div class="scroll" tabindex="0" role="region" aria-label="Totals table"><table><caption>Totals from ${s.start} to ${s.end}</caption>
      <thead><tr><th scope="col">Student</th><th scope="col">Logged</th><th scope="col">Meetings attended</th><th scope="col">Missed</th><th scope="col">Uploads</th><th scope="col">Ingestions</th></tr></thead>
      <tbody>${s.students.map((t) => html`<tr key=${t.student_id}><th scope="row">${t.student_name}</th><td>${hours(t.minutes)}</td>
        <td>${t.meetings_attended}</td><td>${t.meetings_missed}</td><td>${t.uploads}</td><td>${t.ingestions}</td></tr>`)}</tbody></table></div>
      ${s.students.length === 0 && html`<p class="muted">Nothing logged in this range.</p>`}
      <details><summary>Per ${group}</summary><div class="scroll" tabindex="0" role="region" aria-label="Per period table"><table><caption class="visually-hidden">Per period</caption>
        <thead><tr><th scope="col">Student</th><th scope="col">Period</th><th scope="col">Logged</th></tr></thead>
        <tbody>${s.rows.filter((r) => r.minutes > 0).map((r, i) => html`<tr key=${i}><td>${r.student_name}</td><td>${r.period}</td><td>${hours(r.minutes)}</td></tr>`)}</tbody></table></div></details>`}
    ${plot && html`<ul class="plain"><li class="card"><${JobRow} jobId=${plot.job_id} label="Engagement plot" initial=${{ status: plot.status }} onStatus=${(st) => setPlotDone(st === 'succeeded')} />
      ${plotDone && html`<${PlotImage} viz=${plot} />`}</li></ul>`}
  </section>`;
}

export function Engagement({ project, access }) {
  const { user } = useSession();
  const student = user.role === 'student';
  const entries = usePaged(
    (cursor) => api.get(`/api/projects/${project.id}/engagement`, { student_id: access.manage ? '' : user.id, cursor, limit: 25 }),
    [project.id],
  );
  const remove = async (entry) => {
    await api.del(`/api/engagement/${entry.id}`);
    entries.setItems((all) => all.filter((x) => x.id !== entry.id));
  };
  return html`<section aria-labelledby="engagement-h">
    <h2 id="engagement-h">Engagement</h2>
    ${(student || access.write) && html`<${LogTime} pid=${project.id} onLogged=${entries.reload} />`}
    ${access.manage && html`<${Summary} pid=${project.id} />`}
    <h3>${access.manage ? 'Entries' : 'My entries'}</h3>
    <${PagedList} paged=${entries} empty="No time logged yet.">
      <div class="scroll" tabindex="0" role="region" aria-label="Time entries table"><table><caption class="visually-hidden">Time entries</caption>
        <thead><tr><th scope="col">Day</th><th scope="col">Time</th><th scope="col">Activity</th><th scope="col">Notes</th><th scope="col">Actions</th></tr></thead>
        <tbody>${entries.items.map((e) => html`<tr key=${e.id}><td>${day(e.date)}</td><td>${hours(e.minutes)}</td><td>${e.activity}</td><td>${e.notes}</td>
          <td><button type="button" class="small danger" onClick=${() => remove(e)} aria-label=${`Delete the entry of ${day(e.date)}`}>Delete</button></td></tr>`)}</tbody>
      </table></div>
    <//>
  </section>`;
}
