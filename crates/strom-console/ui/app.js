// The console's router: hash routes (#/, #/topics, #/topics/{t}?tab=..., #/groups,
// #/groups/{g}, #/schemas, #/schemas/{subject}, #/connectors) render a page into <main>; pages that return a refresh function are
// refreshed every 2 s while shown. <main data-ready="..."> marks a rendered page (what
// the end-to-end tests and the load-time figure wait for; data-rendered-at is its time
// in ms since the navigation started).
import * as pages from './pages.js';

const REFRESH_MS = 2000;
const main = document.getElementById('app');
let generation = 0;
let timer = null;

function route() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = hash.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const q = new URLSearchParams(query);
  if (parts.length === 0 || parts[0] === 'overview') return ['overview', pages.overview, parts, q];
  if (parts[0] === 'topics' && parts.length === 1) return ['topics', pages.topics, parts, q];
  if (parts[0] === 'topics' && parts.length === 2) return ['topic', pages.topic, parts, q];
  if (parts[0] === 'groups' && parts.length === 1) return ['groups', pages.groups, parts, q];
  if (parts[0] === 'groups' && parts.length === 2) return ['group', pages.group, parts, q];
  if (parts[0] === 'schemas' && parts.length === 1) return ['schemas', pages.schemas, parts, q];
  if (parts[0] === 'schemas' && parts.length === 2) return ['schema', pages.schema, parts, q];
  if (parts[0] === 'connectors' && parts.length === 1) return ['connectors', pages.connectors, parts, q];
  return ['missing', async el => { el.innerHTML = '<h1>Not found</h1><p><a href="#/">Overview</a></p>'; }, parts, q];
}

async function render() {
  const mine = ++generation;
  clearInterval(timer);
  timer = null;
  const [name, page, parts, q] = route();
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', name.startsWith(a.dataset.nav.replace(/s$/, '')) || a.dataset.nav === name);
  }
  delete main.dataset.ready;
  const el = document.createElement('div');
  let refresh;
  try {
    refresh = await page(el, parts, q);
  } catch (e) {
    el.innerHTML = `<p class="error" role="alert">${pages.esc(e.message || e)}</p>`;
  }
  if (mine !== generation) return;
  main.replaceChildren(el);
  main.dataset.ready = name;
  // Milliseconds from the navigation's start to this page rendered (the load-time figure).
  main.dataset.renderedAt = String(Math.round(performance.now()));
  if (typeof refresh === 'function') {
    let busy = false;
    timer = setInterval(async () => {
      if (busy || mine !== generation) return;
      busy = true;
      try { await refresh(); } catch { /* shown at the next successful refresh */ }
      busy = false;
    }, REFRESH_MS);
  }
}

window.addEventListener('hashchange', render);
render();
pages.clusterId().then(id => { document.getElementById('cluster-id').textContent = id; }).catch(() => {});
