// The console's pages. Each renders into `el` from the hash route's path parts and query,
// and may return a refresh function that the router calls periodically while the page is
// shown. Everything shown is escaped with `esc`.
import { api, v3, qs, clusterId } from './api.js';
import { lineChart } from './chart.js';

export const PAGE = 50;

export function esc(v) {
  return String(v ?? '').replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

function bytes(n) {
  if (n === null || n === undefined) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${u[i]}`;
}

function num(n) {
  return n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US');
}

function status(s) {
  return s ? `<span class="status ${esc(s)}">${esc(s)}</span>` : '<span class="muted">–</span>';
}

function errorBox(e) {
  return `<p class="error" role="alert">${esc(e.message || e)}</p>`;
}

function go(path, query = {}) {
  location.hash = `#${path}${qs(query)}`;
}

function pager(total, offset, limit, onPage) {
  const div = document.createElement('div');
  div.className = 'pager';
  const last = Math.min(offset + limit, total);
  div.innerHTML = `<button class="plain" data-prev ${offset <= 0 ? 'disabled' : ''}>‹ Previous</button>
    <span class="muted">${total ? offset + 1 : 0}–${last} of ${num(total)}</span>
    <button class="plain" data-next ${last >= total ? 'disabled' : ''}>Next ›</button>`;
  div.querySelector('[data-prev]').onclick = () => onPage(Math.max(0, offset - limit));
  div.querySelector('[data-next]').onclick = () => onPage(offset + limit);
  return div;
}

// ---------------------------------------------------------------- overview

export async function overview(el) {
  const o = await api('/api/console/overview');
  el.innerHTML = `<h1>Cluster <span class="mono">${esc(o.cluster_id)}</span></h1>
    <div class="cards">
      <div class="card"><div class="muted">Brokers</div><div class="n" id="ov-brokers">${o.brokers.length}</div></div>
      <div class="card"><div class="muted">Controller</div><div class="n" id="ov-controller">${esc(o.controller_id)}</div></div>
      <div class="card"><div class="muted">Topics</div><div class="n" id="ov-topics">${num(o.topics)}</div></div>
      <div class="card"><div class="muted">Partitions (with internal)</div><div class="n" id="ov-partitions">${num(o.partitions)}</div></div>
      <div class="card"><div class="muted">Under-replicated</div><div class="n">${num(o.under_replicated_partitions)}</div></div>
      <div class="card"><div class="muted">Offline</div><div class="n">${num(o.offline_partitions)}</div></div>
      <div class="card"><div class="muted">Consumer groups</div><div class="n">${num(o.groups)}</div></div>
      <div class="card"><div class="muted">Messages/s</div><div class="n" id="ov-rate">${o.messages_per_sec == null ? '–' : o.messages_per_sec.toFixed(1)}</div></div>
    </div>
    <h2>Throughput, last hour (messages/s)</h2>
    <div class="chart" id="throughput-chart"></div>
    <h2>Brokers</h2>
    <table id="brokers"><thead><tr><th>ID</th><th>Host</th><th>Port</th><th>Rack</th><th>Role</th></tr></thead><tbody>
    ${o.brokers.map(b => `<tr><td>${b.broker_id}</td><td>${esc(b.host)}</td><td>${b.port}</td><td>${esc(b.rack ?? '')}</td><td>${b.is_controller ? 'controller' : ''}</td></tr>`).join('')}
    </tbody></table>
    ${o.quorum ? `<h2>Metadata quorum</h2><p>Leader <b>${o.quorum.leader_id}</b>, epoch ${o.quorum.leader_epoch}, high watermark ${num(o.quorum.high_watermark)};
      voters ${o.quorum.voters.map(v => `${v.node_id} (LEO ${num(v.log_end_offset)})`).join(', ')}</p>` : ''}`;
  const refresh = async () => {
    const h = await api('/api/console/history/throughput');
    const chart = el.querySelector('#throughput-chart');
    if (chart) chart.innerHTML = lineChart(h.data.map(p => ({ t: p.t, v: p.messages_per_sec })), { label: 'messages/s', width: 900 });
    const last = h.data[h.data.length - 1];
    const rate = el.querySelector('#ov-rate');
    if (rate && last) rate.textContent = last.messages_per_sec.toFixed(1);
  };
  await refresh();
  return refresh;
}

// ---------------------------------------------------------------- topics

export async function topics(el, _parts, q) {
  const offset = Number(q.get('offset') || 0);
  const filter = q.get('filter') || '';
  const r = await api(`/api/console/topics${qs({ filter, offset, limit: PAGE, internal: q.get('internal') })}`);
  el.innerHTML = `<h1>Topics</h1>
    <form id="topic-filter"><label>Filter<input id="filter" name="filter" value="${esc(filter)}" placeholder="name contains"></label>
      <label>Internal<select name="internal"><option value="">hidden</option><option value="true" ${q.get('internal') === 'true' ? 'selected' : ''}>shown</option></select></label>
      <button>Search</button></form>
    <details id="create-topic"><summary>Create a topic</summary>
      <form id="create-form"><label>Name<input id="new-topic-name" required></label>
        <label>Partitions<input id="new-topic-partitions" type="number" min="1" value="1"></label>
        <label>Replication factor<input id="new-topic-rf" type="number" min="1" value="1"></label>
        <label>Configs (name=value per line)<textarea id="new-topic-configs" rows="2"></textarea></label>
        <button id="create-topic-button">Create</button></form>
      <div id="create-result"></div></details>
    <table id="topics-table"><thead><tr><th>Topic</th><th class="num">Partitions</th><th class="num">Replication</th>
      <th class="num">Messages</th><th class="num">Size</th><th class="num">Under-replicated</th></tr></thead><tbody>
    ${r.data.map(t => `<tr data-topic="${esc(t.topic_name)}"><td><a href="#/topics/${encodeURIComponent(t.topic_name)}">${esc(t.topic_name)}</a></td>
      <td class="num">${num(t.partitions_count)}</td><td class="num">${t.replication_factor}</td>
      <td class="num">${num(t.messages)}</td><td class="num">${bytes(t.size_bytes)}</td><td class="num">${t.under_replicated_partitions}</td></tr>`).join('')}
    </tbody></table>`;
  if (r.data.length === 0) el.querySelector('tbody').innerHTML = '<tr><td colspan="6" class="muted">No topics.</td></tr>';
  el.append(pager(r.total, offset, PAGE, o => go('/topics', { filter, offset: o, internal: q.get('internal') })));
  el.querySelector('#topic-filter').onsubmit = ev => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    go('/topics', { filter: f.get('filter'), internal: f.get('internal') });
  };
  el.querySelector('#create-form').onsubmit = async ev => {
    ev.preventDefault();
    const name = el.querySelector('#new-topic-name').value.trim();
    const configs = el.querySelector('#new-topic-configs').value.split('\n').map(l => l.trim()).filter(Boolean)
      .map(l => { const i = l.indexOf('='); return { name: l.slice(0, i < 0 ? l.length : i), value: i < 0 ? '' : l.slice(i + 1) }; });
    const out = el.querySelector('#create-result');
    try {
      await v3('/topics', { method: 'POST', body: {
        topic_name: name,
        partitions_count: Number(el.querySelector('#new-topic-partitions').value),
        replication_factor: Number(el.querySelector('#new-topic-rf').value),
        configs,
      } });
      go(`/topics/${encodeURIComponent(name)}`);
    } catch (e) {
      out.innerHTML = errorBox(e);
    }
  };
}

export async function topic(el, parts, q) {
  const name = parts[1];
  const tab = q.get('tab') || 'partitions';
  const t = await v3(`/topics/${encodeURIComponent(name)}`);
  el.innerHTML = `<h1>Topic <span class="mono" id="topic-name">${esc(name)}</span></h1>
    <p class="muted">${t.partitions_count} partitions, replication factor ${t.replication_factor}${t.is_internal ? ', internal' : ''}
      <button class="danger" id="delete-topic" style="margin-left:12px">Delete topic</button></p>
    <nav class="tabs">${['partitions', 'messages', 'configs'].map(x =>
      `<a href="#/topics/${encodeURIComponent(name)}?tab=${x}" class="${x === tab ? 'active' : ''}" data-tab="${x}">${x[0].toUpperCase() + x.slice(1)}</a>`).join('')}</nav>
    <section id="tab"></section>`;
  el.querySelector('#delete-topic').onclick = async () => {
    if (!confirm(`Delete topic ${name}? Its records are lost.`)) return;
    try {
      await v3(`/topics/${encodeURIComponent(name)}`, { method: 'DELETE' });
      go('/topics');
    } catch (e) {
      el.querySelector('#tab').insertAdjacentHTML('afterbegin', errorBox(e));
    }
  };
  const sec = el.querySelector('#tab');
  if (tab === 'messages') return messages(sec, name, t, q);
  if (tab === 'configs') return configs(sec, name);
  return partitions(sec, name, q);
}

async function partitions(sec, name, q) {
  const offset = Number(q.get('offset') || 0);
  const r = await api(`/api/console/topics/${encodeURIComponent(name)}/partitions${qs({ offset, limit: PAGE })}`);
  sec.innerHTML = `<table id="partitions-table"><thead><tr><th>Partition</th><th>Leader</th><th>Replicas</th><th>ISR</th>
    <th class="num">Start offset</th><th class="num">End offset</th><th class="num">Messages</th><th class="num">Size</th></tr></thead><tbody>
    ${r.data.map(p => `<tr><td>${p.partition_id}</td><td>${p.leader}</td><td>${p.replicas.join(', ')}</td><td>${p.isr.join(', ')}</td>
      <td class="num">${num(p.log_start_offset)}</td><td class="num">${num(p.log_end_offset)}</td>
      <td class="num">${p.log_end_offset == null ? '–' : num(p.log_end_offset - p.log_start_offset)}</td><td class="num">${bytes(p.size_bytes)}</td></tr>`).join('')}
    </tbody></table>`;
  sec.append(pager(r.total, offset, PAGE, o => go(`/topics/${encodeURIComponent(name)}`, { tab: 'partitions', offset: o })));
}

async function configs(sec, name) {
  const r = await v3(`/topics/${encodeURIComponent(name)}/configs`);
  sec.innerHTML = `<form id="config-form"><label>Config<select id="config-name">${r.data.map(c => `<option>${esc(c.name)}</option>`).join('')}</select></label>
      <label>Value<input id="config-value"></label><button>Set</button></form><div id="config-result"></div>
    <table id="configs-table"><thead><tr><th>Name</th><th>Value</th><th>Source</th></tr></thead><tbody>
    ${r.data.map(c => `<tr${c.is_default ? '' : ' style="font-weight:600"'}><td>${esc(c.name)}</td><td class="mono">${c.is_sensitive ? '••••' : esc(c.value)}</td><td>${esc(c.source)}</td></tr>`).join('')}
    </tbody></table>`;
  sec.querySelector('#config-form').onsubmit = async ev => {
    ev.preventDefault();
    const n = sec.querySelector('#config-name').value;
    try {
      await v3(`/topics/${encodeURIComponent(name)}/configs/${encodeURIComponent(n)}`, { method: 'PUT', body: { value: sec.querySelector('#config-value').value } });
      await configs(sec, name);
      sec.querySelector('#config-result').innerHTML = `<p class="notice">${esc(n)} set.</p>`;
    } catch (e) {
      sec.querySelector('#config-result').innerHTML = errorBox(e);
    }
  };
}

function pretty(value, encoding, format) {
  if (value === null) return '<span class="muted">null</span>';
  if (encoding === 'base64') return `<span class="muted">base64</span> ${esc(value)}`;
  if (format !== 'text') {
    try {
      const v = JSON.parse(value);
      if (typeof v === 'object' && v !== null) return esc(JSON.stringify(v, null, 2));
    } catch { /* not JSON: shown as text */ }
  }
  return esc(value);
}

function utf8ToBase64(s) {
  const b = new TextEncoder().encode(s);
  let bin = '';
  for (const x of b) bin += String.fromCharCode(x);
  return btoa(bin);
}

async function messages(sec, name, t, q) {
  const p = {
    partition: q.get('partition') || '0', mode: q.get('mode') || 'latest', at: q.get('at') || '',
    key: q.get('key') || '', value: q.get('value') || '', header: q.get('header') || '',
    format: q.get('format') || 'json', limit: q.get('limit') || '50', scan: q.get('scan') || '10000',
  };
  // "all" merges every partition by time (the server reads at most 100 partitions so).
  const options = (t.partitions_count <= 100 ? `<option value="all" ${p.partition === 'all' ? 'selected' : ''}>all</option>` : '')
    + Array.from({ length: Math.min(t.partitions_count, 10000) }, (_, i) => `<option ${String(i) === p.partition ? 'selected' : ''}>${i}</option>`).join('');
  sec.innerHTML = `<form id="browse-form">
      <label>Partition<select id="browse-partition" name="partition">${options}</select></label>
      <label>From<select id="browse-mode" name="mode">${['latest', 'earliest', 'offset', 'timestamp'].map(m => `<option ${m === p.mode ? 'selected' : ''}>${m}</option>`).join('')}</select></label>
      <label>Offset / time<input id="browse-at" name="at" value="${esc(p.at)}" placeholder="offset or 2026-12-04T18:00"></label>
      <label>Key contains<input id="filter-key" name="key" value="${esc(p.key)}"></label>
      <label>Value contains<input id="filter-value" name="value" value="${esc(p.value)}"></label>
      <label>Header contains<input id="filter-header" name="header" value="${esc(p.header)}"></label>
      <label>Show values<select id="value-format" name="format"><option value="json" ${p.format === 'json' ? 'selected' : ''}>pretty JSON</option><option value="text" ${p.format === 'text' ? 'selected' : ''}>text</option></select></label>
      <label>Limit<input name="limit" type="number" min="1" max="500" value="${esc(p.limit)}" style="width:70px"></label>
      <label>Scan at most<input id="browse-scan" name="scan" type="number" min="1" max="100000" value="${esc(p.scan)}" style="width:90px"></label>
      <button id="browse-go">Browse</button></form>
    <div id="browse-result"><p class="muted">Reading…</p></div>
    <details id="produce" ${q.get('produce') ? 'open' : ''}><summary>Produce a message</summary>
      <form id="produce-form">
        <label>Partition (empty: by key)<input id="produce-partition" type="number" min="0" style="width:90px"></label>
        <label>Key<input id="produce-key"></label>
        <label>Value<textarea id="produce-value" rows="3"></textarea></label>
        <label>Value type<select id="produce-type"><option>STRING</option><option>JSON</option></select></label>
        <label>Headers (name=value per line)<textarea id="produce-headers" rows="2"></textarea></label>
        <button id="produce-send">Produce</button></form>
      <div id="produce-result"></div></details>`;
  sec.querySelector('#browse-form').onsubmit = ev => {
    ev.preventDefault();
    const f = Object.fromEntries(new FormData(ev.target));
    go(`/topics/${encodeURIComponent(name)}`, { tab: 'messages', ...f });
  };
  sec.querySelector('#produce-form').onsubmit = async ev => {
    ev.preventDefault();
    const out = sec.querySelector('#produce-result');
    out.innerHTML = '<p class="muted">Sending…</p>';
    const type = sec.querySelector('#produce-type').value;
    const raw = sec.querySelector('#produce-value').value;
    let data = raw;
    if (type === 'JSON') {
      try { data = JSON.parse(raw); } catch (e) { out.innerHTML = errorBox(`The value is not JSON: ${e.message}`); return; }
    }
    const key = sec.querySelector('#produce-key').value;
    const part = sec.querySelector('#produce-partition').value;
    const headers = sec.querySelector('#produce-headers').value.split('\n').map(l => l.trim()).filter(Boolean)
      .map(l => { const i = l.indexOf('='); return { name: i < 0 ? l : l.slice(0, i), value: utf8ToBase64(i < 0 ? '' : l.slice(i + 1)) }; });
    const body = { value: { type, data }, headers };
    if (key !== '') body.key = { type: 'STRING', data: key };
    if (part !== '') body.partition_id = Number(part);
    try {
      const r = await v3(`/topics/${encodeURIComponent(name)}/records`, { method: 'POST', body });
      if (r.error_code && r.error_code !== 200) throw new Error(r.message || `error ${r.error_code}`);
      out.innerHTML = `<p class="notice" id="produced">Produced to partition ${r.partition_id} at offset ${r.offset}.</p>`;
    } catch (e) {
      out.innerHTML = errorBox(e);
    }
  };
  const query = { partition: p.partition, limit: p.limit, max_scan: p.scan, key: p.key, value: p.value, header: p.header };
  if (p.mode === 'offset') query.offset = p.at || '0';
  else if (p.mode === 'timestamp') {
    const ms = /^\d+$/.test(p.at) ? Number(p.at) : Date.parse(p.at);
    if (Number.isNaN(ms)) { sec.querySelector('#browse-result').innerHTML = errorBox(`'${p.at}' is not a time`); return; }
    query.timestamp = ms;
  } else query.position = p.mode;
  const res = sec.querySelector('#browse-result');
  try {
    const r = await api(`/api/console/topics/${encodeURIComponent(name)}/messages${qs(query)}`);
    const summary = r.partition_id === 'all'
      ? `All ${r.partitions.length} partitions, merged by time: read ${num(r.scanned)}, ${r.data.length} shown.`
      : `Partition ${r.partition_id}: offsets ${num(r.log_start_offset)}–${num(r.log_end_offset)};
        read ${num(r.scanned)} from offset ${num(r.from_offset)}, ${r.data.length} shown.`;
    res.innerHTML = `<p class="muted" id="browse-summary">${summary}</p>
      <table id="messages-table"><thead><tr><th class="num">Partition</th><th class="num">Offset</th><th>Time</th><th>Key</th><th>Value</th><th>Headers</th></tr></thead><tbody>
      ${r.data.map(m => `<tr class="msg-row" data-offset="${m.offset}"><td class="num">${m.partition}</td><td class="num">${m.offset}</td><td>${esc(m.time)}</td>
        <td class="mono">${pretty(m.key, m.key_encoding, 'text')}</td>
        <td><pre>${pretty(m.value, m.value_encoding, p.format)}</pre>${m.schema_id != null ? `<span class="muted schema">schema ${m.schema_id}${m.schema_type ? ` (${esc(m.schema_type)}, decoded)` : m.decode_error ? `: not decoded: ${esc(m.decode_error)}` : ' (no registry configured)'}</span>` : ''}${m.truncated ? '<span class="muted">(cut)</span>' : ''}</td>
        <td>${m.headers.map(h => `<div class="mono">${esc(h.key)}=${esc(h.value ?? '')}</div>`).join('')}</td></tr>`).join('')}
      </tbody></table>`;
    if (r.data.length === 0) res.querySelector('tbody').innerHTML = '<tr><td colspan="6" class="muted" id="no-messages">No messages.</td></tr>';
    if (!r.end_reached && r.partition_id !== 'all') {
      const b = document.createElement('button');
      b.className = 'plain'; b.id = 'browse-next'; b.textContent = `Continue from offset ${r.next_offset} ›`;
      b.onclick = () => go(`/topics/${encodeURIComponent(name)}`, { tab: 'messages', ...p, mode: 'offset', at: r.next_offset });
      res.append(b);
    }
  } catch (e) {
    res.innerHTML = errorBox(e);
  }
}

// ---------------------------------------------------------------- groups

export async function groups(el, _parts, q) {
  const offset = Number(q.get('offset') || 0);
  const filter = q.get('filter') || '';
  const r = await api(`/api/console/groups${qs({ filter, offset, limit: PAGE })}`);
  el.innerHTML = `<h1>Consumer groups</h1>
    <form id="group-filter"><label>Filter<input name="filter" value="${esc(filter)}" placeholder="id contains"></label><button>Search</button></form>
    <table id="groups-table"><thead><tr><th>Group</th><th>State</th><th class="num">Members</th><th class="num">Lag</th><th>Status</th></tr></thead><tbody>
    ${r.data.map(g => `<tr data-group="${esc(g.group_id)}"><td><a href="#/groups/${encodeURIComponent(g.group_id)}">${esc(g.group_id)}</a></td>
      <td>${esc(g.state)}</td><td class="num">${g.members}</td><td class="num">${num(g.total_lag)}</td><td>${status(g.status)}</td></tr>`).join('')}
    </tbody></table>`;
  if (r.data.length === 0) el.querySelector('tbody').innerHTML = '<tr><td colspan="5" class="muted">No groups.</td></tr>';
  el.append(pager(r.total, offset, PAGE, o => go('/groups', { filter, offset: o })));
  el.querySelector('#group-filter').onsubmit = ev => {
    ev.preventDefault();
    go('/groups', { filter: new FormData(ev.target).get('filter') });
  };
}

export async function group(el, parts, q) {
  const id = parts[1];
  const offset = Number(q.get('offset') || 0);
  const path = `/api/console/groups/${encodeURIComponent(id)}`;
  const first = await api(`${path}${qs({ offset, limit: PAGE })}`);
  const topicsOf = [...new Set(first.partitions.map(p => p.topic_name))];
  el.innerHTML = `<h1>Group <span class="mono">${esc(id)}</span></h1>
    <section id="group-live"></section>
    <h2>Total lag, last hour</h2><div class="chart" id="lag-chart"></div>
    <h2>Reset offsets</h2>
    <p class="muted">Kafka resets offsets only for a group without members: stop its consumers first. Preview shows the new offsets; nothing changes until you apply.</p>
    <form id="reset-form">
      <label>Topic<input id="reset-topic" list="reset-topics" placeholder="all committed partitions"><datalist id="reset-topics">${topicsOf.map(t => `<option>${esc(t)}</option>`).join('')}</datalist></label>
      <label>To<select id="reset-to"><option>earliest</option><option>latest</option><option>offset</option><option>timestamp</option></select></label>
      <label>Offset / time<input id="reset-value" placeholder="offset or 2026-12-04T18:00"></label>
      <button id="reset-preview">Preview</button>
      <button type="button" class="danger" id="reset-apply" disabled>Apply</button></form>
    <div id="reset-result"></div>`;
  const live = el.querySelector('#group-live');
  const render = r => {
    live.innerHTML = `<div class="cards">
        <div class="card"><div class="muted">State</div><div class="n" id="group-state">${esc(r.state)}</div></div>
        <div class="card"><div class="muted">Members</div><div class="n">${r.members.length}</div></div>
        <div class="card"><div class="muted">Total lag</div><div class="n" id="group-lag">${num(r.partitions.reduce((s, p) => s + (p.lag || 0), 0))}</div></div>
        <div class="card"><div class="muted">Status (Burrow)</div><div class="n">${status(r.status)}</div></div></div>
      <h2>Members</h2>
      <table id="members-table"><thead><tr><th>Member</th><th>Client</th><th>Host</th><th>Assignments</th></tr></thead><tbody>
      ${r.members.map(m => `<tr><td class="mono">${esc(m.member_id)}</td><td>${esc(m.client_id)}</td><td>${esc(m.host)}</td>
        <td>${m.assignments.map(a => `${esc(a.topic_name)}-${a.partition_id}`).join(', ')}</td></tr>`).join('') || '<tr><td colspan="4" class="muted">No members.</td></tr>'}
      </tbody></table>
      <h2>Partitions</h2>
      <table id="lag-table"><thead><tr><th>Topic</th><th>Partition</th><th class="num">Committed</th><th class="num">End</th><th class="num">Lag</th><th>Owner</th><th>Status</th></tr></thead><tbody>
      ${r.partitions.map(p => `<tr data-tp="${esc(p.topic_name)}-${p.partition_id}"><td>${esc(p.topic_name)}</td><td>${p.partition_id}</td>
        <td class="num">${num(p.committed_offset)}</td><td class="num">${num(p.log_end_offset)}</td><td class="num lag">${num(p.lag)}</td>
        <td>${esc(p.client_id ?? '')}</td><td>${status(p.status)}</td></tr>`).join('')}
      </tbody></table>`;
    live.append(pager(r.partitions_total, offset, PAGE, o => go(`/groups/${encodeURIComponent(id)}`, { offset: o })));
  };
  render(first);
  const refresh = async () => {
    const [r, h] = await Promise.all([api(`${path}${qs({ offset, limit: PAGE })}`), api(`/api/console/history/lag/${encodeURIComponent(id)}`)]);
    render(r);
    el.querySelector('#lag-chart').innerHTML = lineChart(h.data.map(p => ({ t: p.t, v: p.lag })), { label: 'lag (messages)', width: 900, color: '#b7791f' });
  };
  const h = await api(`/api/console/history/lag/${encodeURIComponent(id)}`);
  el.querySelector('#lag-chart').innerHTML = lineChart(h.data.map(p => ({ t: p.t, v: p.lag })), { label: 'lag (messages)', width: 900, color: '#b7791f' });

  const request = dryRun => {
    const to = el.querySelector('#reset-to').value;
    const v = el.querySelector('#reset-value').value.trim();
    const body = { to, dry_run: dryRun };
    const topic = el.querySelector('#reset-topic').value.trim();
    if (topic) body.topic = topic;
    if (to === 'offset') body.offset = Number(v);
    if (to === 'timestamp') body.timestamp = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
    return api(`${path}/reset-offsets`, { method: 'POST', body });
  };
  const out = el.querySelector('#reset-result');
  const apply = el.querySelector('#reset-apply');
  el.querySelector('#reset-form').onsubmit = async ev => {
    ev.preventDefault();
    apply.disabled = true;
    try {
      const r = await request(true);
      out.innerHTML = `<p class="muted" id="reset-preview-note">Preview (group ${esc(r.state)}, ${r.members} members)${r.can_apply ? '' : ': the group has members, Kafka will refuse'}.</p>
        <table id="reset-table"><thead><tr><th>Topic</th><th>Partition</th><th class="num">Current</th><th class="num">New</th><th class="num">Lag after</th></tr></thead><tbody>
        ${r.partitions.map(p => `<tr><td>${esc(p.topic_name)}</td><td>${p.partition_id}</td><td class="num">${num(p.current_offset)}</td><td class="num new">${num(p.new_offset)}</td><td class="num">${num(p.lag_after)}</td></tr>`).join('')}
        </tbody></table>`;
      apply.disabled = false;
    } catch (e) {
      out.innerHTML = errorBox(e);
    }
  };
  apply.onclick = async () => {
    apply.disabled = true;
    try {
      const r = await request(false);
      out.innerHTML = `<p class="notice" id="reset-done">Offsets of ${r.partitions.length} partitions reset.</p>`;
      await refresh();
    } catch (e) {
      out.insertAdjacentHTML('afterbegin', errorBox(e));
    }
  };
  return refresh;
}

export { clusterId };

// ---------------------------------------------------------------- schemas

export async function schemas(el, _parts, q) {
  const offset = Number(q.get('offset') || 0);
  const filter = q.get('filter') || '';
  const r = await api(`/api/console/schemas${qs({ filter, offset, limit: PAGE })}`);
  el.innerHTML = `<h1>Schemas</h1>
    <form id="schema-filter"><label>Filter<input name="filter" value="${esc(filter)}" placeholder="subject contains"></label><button>Search</button></form>
    <table id="schemas-table"><thead><tr><th>Subject</th><th>Type</th><th class="num">Latest version</th><th class="num">Schema id</th></tr></thead><tbody>
    ${r.data.map(s => `<tr data-subject="${esc(s.subject)}"><td><a href="#/schemas/${encodeURIComponent(s.subject)}">${esc(s.subject)}</a></td>
      <td>${esc(s.schema_type)}</td><td class="num">${esc(s.version)}</td><td class="num">${esc(s.id)}</td></tr>`).join('')}
    </tbody></table>`;
  if (r.data.length === 0) el.querySelector('tbody').innerHTML = '<tr><td colspan="4" class="muted">No subjects.</td></tr>';
  el.append(pager(r.total, offset, PAGE, o => go('/schemas', { filter, offset: o })));
  el.querySelector('#schema-filter').onsubmit = ev => {
    ev.preventDefault();
    go('/schemas', { filter: new FormData(ev.target).get('filter') });
  };
}

function prettySchema(text) {
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
}

export async function schema(el, parts, q) {
  const subject = parts[1];
  const version = q.get('version') || '';
  const s = await api(`/api/console/schemas/${encodeURIComponent(subject)}${qs({ version })}`);
  el.innerHTML = `<h1>Subject <span class="mono">${esc(subject)}</span></h1>
    <div class="cards">
      <div class="card"><div class="muted">Type</div><div class="n" id="schema-type">${esc(s.schema_type)}</div></div>
      <div class="card"><div class="muted">Version</div><div class="n" id="schema-version">${esc(s.version)}</div></div>
      <div class="card"><div class="muted">Schema id</div><div class="n">${esc(s.id)}</div></div>
      <div class="card"><div class="muted">Compatibility</div><div class="n">${esc(s.compatibility ?? '–')}</div></div>
    </div>
    <form id="version-form"><label>Version<select id="schema-versions">
      ${s.versions.map(v => `<option ${v === s.version ? 'selected' : ''}>${esc(v)}</option>`).join('')}</select></label></form>
    ${s.references.length ? `<h2>References</h2><ul>${s.references.map(r => `<li>${esc(r.name)} → <a href="#/schemas/${encodeURIComponent(r.subject)}?version=${esc(r.version)}">${esc(r.subject)} v${esc(r.version)}</a></li>`).join('')}</ul>` : ''}
    <h2>Schema</h2><pre class="value" id="schema-text">${esc(prettySchema(s.schema))}</pre>`;
  el.querySelector('#schema-versions').onchange = ev => go(`/schemas/${encodeURIComponent(subject)}`, { version: ev.target.value });
}

// ---------------------------------------------------------------- connectors

export async function connectors(el, _parts, q) {
  const filter = q.get('filter') || '';
  el.innerHTML = `<h1>Connectors</h1>
    <form id="connector-filter"><label>Filter<input name="filter" value="${esc(filter)}" placeholder="name contains"></label><button>Search</button></form>
    <div id="connectors-live"></div>`;
  el.querySelector('#connector-filter').onsubmit = ev => {
    ev.preventDefault();
    go('/connectors', { filter: new FormData(ev.target).get('filter') });
  };
  const live = el.querySelector('#connectors-live');
  const refresh = async () => {
    const r = await api(`/api/console/connectors${qs({ filter })}`);
    live.innerHTML = `<table id="connectors-table"><thead><tr><th>Name</th><th>Type</th><th>Class</th><th>State</th><th>Tasks</th><th>Worker</th><th></th></tr></thead><tbody>
      ${r.data.map(c => `<tr data-connector="${esc(c.name)}"><td>${esc(c.name)}</td><td>${esc(c.type)}</td><td class="mono">${esc(c.class)}</td>
        <td data-state>${status(c.state)}</td>
        <td>${(c.tasks || []).map(t => `${esc(t.id)}: ${status(t.state)}`).join(' ')}</td><td>${esc(c.worker_id)}</td>
        <td><button class="plain" data-action="pause">Pause</button><button class="plain" data-action="resume">Resume</button><button class="plain" data-action="restart">Restart</button></td></tr>`).join('')}
      </tbody></table>`;
    if (r.data.length === 0) live.querySelector('tbody').innerHTML = '<tr><td colspan="7" class="muted">No connectors.</td></tr>';
    for (const b of live.querySelectorAll('[data-action]')) {
      b.onclick = async () => {
        const name = b.closest('tr').dataset.connector;
        try {
          await api(`/api/console/connectors/${encodeURIComponent(name)}/${b.dataset.action}`, { method: 'POST' });
          await refresh();
        } catch (e) {
          live.insertAdjacentHTML('afterbegin', errorBox(e));
        }
      };
    }
  };
  await refresh();
  return refresh;
}
