// "Where did this come from": a dataset version's lineage (GET /api/lineage) drawn as a small SVG
// graph in the browser: what it came from to the left, what came from it to the right, one column
// per step. The same graph is listed as sentences for screen readers and for copying; what the
// reader may not see is a "hidden" box.

import { html } from '../../vendor/htm-preact.js';
import * as api from '../api.js';
import { ErrorNote, Link, Loading, useAction, useLoad } from '../ui.js';

const BOX_W = 190;
const BOX_H = 46;
const GAP_X = 70;
const GAP_Y = 18;
const KIND_NAMES = { file: 'raw file', ingestion: 'ingestion', dataset: 'dataset', query: 'saved query', plot: 'plot', record: 'record', document: 'document', export: 'export' };
const RELATION_TEXT = { used: 'used', wasGeneratedBy: 'was made by', wasDerivedFrom: 'was derived from', wasRevisionOf: 'is a new version of', wasInfluencedBy: 'cites' };

// each node's column: the root at 0, what it came from at -1, -2…, what came from it at 1, 2…
export function layers(graph) {
  const column = { [graph.root]: 0 };
  const queue = [graph.root];
  while (queue.length) {
    const key = queue.shift();
    for (const edge of graph.edges) {
      const [next, step] = edge.source === key ? [edge.target, -1] : edge.target === key ? [edge.source, 1] : [null, 0];
      if (next === null || next in column) continue;
      const here = column[key];
      // never turn back: from an ancestor go further up, from a descendant further down
      if ((here < 0 && step > 0) || (here > 0 && step < 0)) continue;
      column[next] = here + step;
      queue.push(next);
    }
  }
  return column;
}

const short = (text, n = 26) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

function nodeTitle(node) {
  if (node.hidden) return `hidden ${KIND_NAMES[node.kind] || node.kind}`;
  return `${KIND_NAMES[node.kind] || node.kind}${node.version ? ` v${node.version}` : ''}`;
}

function nodeHref(node) {
  if (node.hidden) return null;
  if (node.kind === 'dataset') return `/datasets/${node.id}?version=${node.version}`;
  if (node.kind === 'record' || node.kind === 'document') return `/projects/${node.project_id}/${node.kind}s`;
  return null;
}

function Graph({ graph }) {
  const column = layers(graph);
  const nodes = graph.nodes.filter((n) => n.key in column);
  const byColumn = {};
  for (const n of nodes) (byColumn[column[n.key]] ||= []).push(n);
  const columns = Object.keys(byColumn).map(Number).sort((a, b) => a - b);
  const tallest = Math.max(...columns.map((c) => byColumn[c].length));
  const width = columns.length * (BOX_W + GAP_X) - GAP_X + 20;
  const height = tallest * (BOX_H + GAP_Y) - GAP_Y + 20;
  const at = {};
  columns.forEach((c, i) => {
    const list = byColumn[c];
    const top = (height - (list.length * (BOX_H + GAP_Y) - GAP_Y)) / 2;
    list.forEach((n, j) => { at[n.key] = { x: 10 + i * (BOX_W + GAP_X), y: top + j * (BOX_H + GAP_Y) }; });
  });
  const lines = graph.edges.filter((e) => at[e.source] && at[e.target]).map((e) => {
    const [a, b] = column[e.source] > column[e.target] ? [at[e.target], at[e.source]] : [at[e.source], at[e.target]];
    return { key: `${e.source}-${e.relation}-${e.target}`, x1: a.x + BOX_W, y1: a.y + BOX_H / 2, x2: b.x, y2: b.y + BOX_H / 2 };
  });
  return html`<div class="scroll lineage-graph" tabindex="0" role="region" aria-label="Lineage graph">
    <svg width=${width} height=${height} viewBox=${`0 0 ${width} ${height}`} role="group" aria-label=${`Lineage: ${nodes.length} things, ${lines.length} links`}>
      ${lines.map((l) => html`<line key=${l.key} class="edge" x1=${l.x1} y1=${l.y1} x2=${l.x2} y2=${l.y2} />`)}
      ${nodes.map((n) => {
        const p = at[n.key];
        const href = nodeHref(n);
        const box = html`<g class=${`node kind-${n.kind}${n.hidden ? ' hidden' : ''}${n.key === graph.root ? ' root' : ''}`} data-key=${n.key}>
          <rect x=${p.x} y=${p.y} width=${BOX_W} height=${BOX_H} rx="6" />
          <text x=${p.x + 8} y=${p.y + 18} class="kind">${nodeTitle(n)}</text>
          <text x=${p.x + 8} y=${p.y + 36}>${n.hidden ? 'you may not see this' : short(n.label || n.id || '')}</text>
        </g>`;
        return href ? html`<a key=${n.key} href=${href} aria-label=${`${nodeTitle(n)} ${n.label}`}>${box}</a>` : html`<g key=${n.key}>${box}</g>`;
      })}
    </svg>
  </div>`;
}

function Sentences({ graph }) {
  const names = Object.fromEntries(graph.nodes.map((n) => [n.key, n.hidden ? `a ${KIND_NAMES[n.kind] || n.kind} you may not see` : `${nodeTitle(n)} “${n.label}”`]));
  return html`<details><summary>The lineage in words</summary><ul class="lineage-list">
    ${graph.edges.map((e) => html`<li key=${`${e.source}-${e.relation}-${e.target}`}>${names[e.source]} ${RELATION_TEXT[e.relation] || e.relation} ${names[e.target]}</li>`)}
  </ul></details>`;
}

export function Lineage({ dataset }) {
  const versionId = dataset.version_id || dataset.id;
  const graph = useLoad(() => api.get('/api/lineage', { kind: 'dataset', id: versionId, direction: 'both', depth: 3 }), [versionId]);
  const prov = useAction();
  return html`<section aria-labelledby="lineage-h">
    <h2 id="lineage-h">Where did this come from</h2>
    <${ErrorNote} error=${graph.error} />
    ${graph.loading && html`<${Loading} />`}
    ${graph.data && html`<${Graph} graph=${graph.data} /><${Sentences} graph=${graph.data} />`}
    ${graph.data?.truncated && html`<p class="muted">The graph is larger than shown.</p>`}
    <div class="row wrap">
      <button type="button" class="secondary small" onClick=${() => prov.run(() => api.download('/api/lineage', { kind: 'dataset', id: versionId, direction: 'both', depth: 10, format: 'prov-json' }, `${dataset.name}.prov.json`))}>Download as W3C PROV-JSON</button>
    </div>
    <${ErrorNote} error=${prov.error} />
  </section>`;
}
