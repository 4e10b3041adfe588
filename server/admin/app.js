// The admin console of Dartmouth Knowledge: plain DOM, no framework. Every string from the
// server is rendered as text (textContent), except a search hit's `snippet`, which the server
// HTML-escapes itself and whose only markup is <em>…</em>.
'use strict';

const KEY_STORAGE = 'dartmouth-admin-key';
const METRICS_EVERY_MS = 2000;

const state = { key: null, tab: 'domains', domains: [], principals: [], panelDomain: null, group: null, metricsTimer: null };

// ---------- helpers ----------

const $ = (sel, root = document) => root.querySelector(sel);

/** An element with attributes/properties and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name in node && name !== 'list') node[name] = value;
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An error the API answered with. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API with the signed-in key (or `key`); the parsed JSON body, null when empty. */
async function api(method, path, body, key = state.key) {
  const headers = { Accept: 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, 'network', `the server could not be reached (${e.message})`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!response.ok) {
    const err = data && data.error;
    const message = err && err.message ? err.message : (typeof data === 'string' && data ? data : response.statusText);
    throw new ApiError(response.status, err && err.code ? err.code : String(response.status), message);
  }
  return data;
}

const enc = encodeURIComponent;

function fmtTime(ms) {
  if (ms === null || ms === undefined) return '—';
  const d = new Date(typeof ms === 'number' ? ms : Date.parse(ms));
  if (Number.isNaN(d.getTime())) return String(ms);
  return d.toISOString().replace('T', ' ').slice(0, 19);
}

function fmtNum(v, digits = 2) {
  if (v === null || v === undefined || Number.isNaN(Number(v))) return '—';
  const n = Number(v);
  return Number.isInteger(n) ? String(n) : n.toFixed(digits);
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function fmtValue(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function fmtDuration(seconds) {
  const s = Math.floor(Number(seconds) || 0);
  const parts = [[Math.floor(s / 86400), 'd'], [Math.floor(s / 3600) % 24, 'h'], [Math.floor(s / 60) % 60, 'm'], [s % 60, 's']];
  const shown = parts.filter(([n], i) => n > 0 || i === 3);
  return shown.slice(0, 2).map(([n, u]) => `${n}${u}`).join(' ');
}

/** A line for the section: kind is 'ok' or 'error'. */
function notify(message, kind = 'ok') {
  const n = $('#notice');
  n.textContent = message;
  n.className = `notice ${kind}`;
  n.setAttribute('role', kind === 'error' ? 'alert' : 'status');
}

/** Runs an action, reporting its error (and signing out when the key stopped working). */
async function run(action, button) {
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401 && state.key) {
      signOut(`Signed out: ${e.message}`);
    } else {
      notify(e instanceof ApiError ? `Error (${e.code}): ${e.message}` : `Error: ${e.message}`, 'error');
    }
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

function formValues(form) {
  const values = {};
  for (const [k, v] of new FormData(form).entries()) values[k] = typeof v === 'string' ? v.trim() : v;
  return values;
}

function commaList(text) {
  return (text || '').split(',').map((s) => s.trim()).filter(Boolean);
}

function fillRows(table, rows, emptyText) {
  const body = $('tbody', table);
  body.replaceChildren(...rows);
  if (rows.length === 0) {
    const cols = $('thead tr', table).children.length;
    body.append(el('tr', { class: 'empty' }, el('td', { colSpan: cols, text: emptyText })));
  }
}

function actionButton(label, ariaLabel, handler, cls) {
  return el('button', { type: 'button', class: cls, 'aria-label': ariaLabel, text: label, onclick: (ev) => run(() => handler(ev), ev.currentTarget) });
}

// ---------- sign in ----------

async function signIn(key) {
  // Any authenticated call checks the key; listing principals needs an administrator.
  await api('GET', '/v1/principals', undefined, key);
  state.key = key;
  sessionStorage.setItem(KEY_STORAGE, key);
  $('#session-key').textContent = `${key.slice(0, 11)}…`;
  $('#signin').hidden = true;
  $('#signin-error').hidden = true;
  $('#session').hidden = false;
  $('#app').hidden = false;
  notify('');
  await showTab(state.tab);
}

function signOut(message) {
  state.key = null;
  sessionStorage.removeItem(KEY_STORAGE);
  stopMetrics();
  $('#app').hidden = true;
  $('#session').hidden = true;
  $('#signin').hidden = false;
  $('#signin-key').value = '';
  $('#secret-box').hidden = true;
  $('#key-secret').textContent = '';
  const error = $('#signin-error');
  error.textContent = message || '';
  error.hidden = !message;
}

$('#signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const key = $('#signin-key').value.trim();
  const error = $('#signin-error');
  const button = $('button', ev.currentTarget);
  button.disabled = true;
  try {
    await signIn(key);
  } catch (e) {
    error.textContent = `Sign-in failed: ${e.message}`;
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
});

$('#sign-out').addEventListener('click', () => signOut('Signed out.'));

// ---------- tabs ----------

const loaders = {
  domains: loadDomains,
  principals: loadPrincipals,
  grants: loadGrants,
  keys: loadKeys,
  audit: loadAudit,
  search: loadDomainChoices,
  metrics: startMetrics,
};

async function showTab(name) {
  state.tab = name;
  for (const tab of document.querySelectorAll('[role=tab]')) {
    tab.setAttribute('aria-selected', String(tab.dataset.tab === name));
  }
  for (const panel of document.querySelectorAll('.tab')) panel.hidden = panel.id !== `tab-${name}`;
  if (name !== 'metrics') stopMetrics();
  notify('');
  await run(loaders[name]);
}

for (const tab of document.querySelectorAll('[role=tab]')) {
  tab.addEventListener('click', () => showTab(tab.dataset.tab));
}
for (const button of document.querySelectorAll('[data-refresh]')) {
  button.addEventListener('click', () => run(loaders[button.dataset.refresh], button));
}

// ---------- domains ----------

async function loadDomainChoices() {
  state.domains = await api('GET', '/v1/domains');
  for (const select of document.querySelectorAll('select.domain-select')) {
    const chosen = new Set(Array.from(select.selectedOptions, (o) => o.value));
    select.replaceChildren(...state.domains.map((d) => el('option', { value: d.name, text: d.name, selected: chosen.has(d.name) })));
  }
}

/** The catalogue's embedding models installed on this node, in every model select. */
async function loadModelChoices() {
  const { models } = await api('GET', '/v1/models');
  const usable = models.filter((m) => m.kind === 'embedding' && m.installed === 'ok');
  for (const select of document.querySelectorAll('select.model-select')) {
    const chosen = select.value;
    select.replaceChildren(...usable.map((m) => el('option', {
      value: m.id,
      text: `${m.id} (${m.dim}d${m.quantized ? ', int8' : ''})`,
      selected: m.id === chosen,
    })));
  }
}

async function loadDomains() {
  await Promise.all([loadDomainChoices(), loadModelChoices()]);
  const rows = state.domains.map((d) => el('tr', { 'data-domain': d.name },
    el('td', {}, el('strong', { text: d.name })),
    el('td', { text: d.description || '' }),
    el('td', { class: 'mono small', text: fmtValue(d.settings) }),
    el('td', { text: fmtTime(d.created_at) }),
    el('td', { class: 'actions' },
      actionButton('Stats', `Stats of ${d.name}`, () => openDomain(d.name), 'secondary'),
      actionButton('Delete', `Delete domain ${d.name}`, () => deleteDomain(d.name), 'danger'))));
  fillRows($('#domains-table'), rows, 'No domains yet.');
}

$('#domain-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  run(async () => {
    const v = formValues(form);
    const body = { name: v.name, embedder: v.embedder };
    if (v.embedder === 'local' && v.model) body.model = v.model;
    if (v.description) body.description = v.description;
    if (v.chunk_tokens) body.chunk_tokens = Number(v.chunk_tokens);
    if (v.chunk_overlap) body.chunk_overlap = Number(v.chunk_overlap);
    const d = await api('POST', '/v1/domains', body);
    form.reset();
    notify(`Domain ${d.name} created.`);
    await loadDomains();
  }, $('button[type=submit]', form));
});

async function deleteDomain(name) {
  if (!window.confirm(`Delete domain "${name}" with all its documents? This cannot be undone.`)) return;
  await api('DELETE', `/v1/domains/${enc(name)}`);
  if (state.panelDomain === name) closeDomain();
  notify(`Domain ${name} deleted.`);
  await loadDomains();
}

async function openDomain(name) {
  state.panelDomain = name;
  $('#panel-domain').textContent = name;
  $('#reindex-result').textContent = '';
  $('#domain-panel').hidden = false;
  await loadStats();
  const d = state.domains.find((x) => x.name === name);
  $('#describe-form').elements.description.value = d ? d.description || '' : '';
  $('#domain-panel').scrollIntoView({ block: 'nearest' });
}

function closeDomain() {
  state.panelDomain = null;
  $('#domain-panel').hidden = true;
}
$('#panel-close').addEventListener('click', closeDomain);
$('#panel-refresh').addEventListener('click', (ev) => run(loadStats, ev.currentTarget));

const STAT_LABELS = [
  ['documents', 'Documents'], ['chunks', 'Chunks'], ['graph_points', 'Graph points'],
  ['stored_documents', 'Stored documents'], ['stored_chunks', 'Stored chunks'],
  ['applied_seq', 'Applied seq'], ['last_seq', 'Last seq'], ['last_sync', 'Last sync'],
  ['model', 'Model'], ['variants', 'Variants'],
];

async function loadStats() {
  const name = state.panelDomain;
  const s = await api('GET', `/v1/domains/${enc(name)}`);
  const items = [];
  for (const [field, label] of STAT_LABELS) {
    if (!(field in s)) continue;
    items.push(el('div', { 'data-stat': field }, el('dt', { text: label }), el('dd', { text: fmtValue(s[field]) })));
  }
  $('#domain-stats').replaceChildren(...items);
  const g = s.generations || {};
  const other = g.other;
  let text = `Serving ${s.model ? s.model.id : '?'} (slot ${g.active}).`;
  if (other && other.state === 'building') {
    const p = s.other_generation || { embedded: 0, chunks: 0 };
    text += ` Switching to ${other.model.id}: ${fmtValue(p.embedded)} of ${fmtValue(p.chunks)} chunks embedded.`;
  } else if (other) {
    text += ` Keeps ${other.model.id} for rollback.`;
  }
  $('#generations').textContent = text;
  $('#rollback-button').disabled = !(other && other.state === 'kept');
  $('#drop-generation-button').disabled = !other;
  renderShop(s.shop);
  const q = Array.isArray(s.quarantined) ? s.quarantined : [];
  fillRows($('#quarantine-table'), q.map((r) => el('tr', {},
    el('td', { text: r.external_id }), el('td', { text: fmtValue(r.seq) }),
    el('td', { text: r.reason }), el('td', { text: fmtTime(r.at) }))), 'Nothing quarantined.');
}

// ---------- a domain's shop ----------

/** The domain's shop connection (from its stats), or null. */
function renderShop(c) {
  const connected = Boolean(c);
  for (const id of ['#shop-sync-button', '#shop-full-sync-button', '#shop-disconnect-button']) $(id).disabled = !connected;
  if (!connected) {
    $('#shop-status').textContent = 'No shop connected.';
    return;
  }
  const last = (c.state || {}).last;
  let text = `${c.shop} (Admin API ${c.api_version}, token from ${c.token_env})`;
  text += c.every_ms ? `, every ${fmtDuration(c.every_ms / 1000)}` : ', on demand';
  if (c.syncing) text += '. Syncing now';
  if (last) {
    text += `. Last run: ${last.kind} at ${fmtTime(last.started)}, ${fmtNum(last.duration_ms / 1000, 1)} s: `
      + `${last.added ?? 0} added, ${last.updated ?? 0} updated, ${last.unchanged ?? 0} unchanged, `
      + `${last.deleted ?? 0} deleted, ${last.failed ?? 0} failed`;
  } else {
    text += '. Never synced';
  }
  if (c.next_run) text += `. Next run ${fmtTime(c.next_run)}`;
  if (c.state && c.state.error) text += `. Last error: ${c.state.error}`;
  $('#shop-status').textContent = `${text}.`;
}

$('#shop-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  run(async () => {
    const v = formValues(form);
    const body = { shop: v.shop, token_env: v.token_env };
    if (v.api_version) body.api_version = v.api_version;
    if (v.every) body.every = v.every;
    if (v.metafields) body.metafields = commaList(v.metafields);
    const c = await api('POST', `/v1/domains/${enc(state.panelDomain)}/shopify/connection`, body);
    notify(`Connected ${c.shop} to ${c.domain}.`);
    await loadStats();
  }, $('button[type=submit]', form));
});

for (const [id, full] of [['#shop-sync-button', false], ['#shop-full-sync-button', true]]) {
  $(id).addEventListener('click', (ev) => run(async () => {
    const name = state.panelDomain;
    const t = await api('POST', `/v1/domains/${enc(name)}/shopify/sync`, { full });
    notify(`Syncing ${name}'s shop: task ${t.id}.`);
    await loadStats();
  }, ev.currentTarget));
}

$('#shop-disconnect-button').addEventListener('click', (ev) => run(async () => {
  const name = state.panelDomain;
  if (!window.confirm(`Disconnect the shop of "${name}"? Its documents stay.`)) return;
  await api('DELETE', `/v1/domains/${enc(name)}/shopify/connection`);
  notify(`Disconnected the shop of ${name}.`);
  await loadStats();
}, ev.currentTarget));

$('#reindex-button').addEventListener('click', (ev) => run(async () => {
  const name = state.panelDomain;
  $('#reindex-result').textContent = `Reindexing ${name}…`;
  const r = await api('POST', `/v1/domains/${enc(name)}/reindex`);
  $('#reindex-result').textContent =
    `Reindexed ${r.domain}: ${plural(r.documents, 'document')}, ${plural(r.chunks, 'chunk')} in ${fmtNum(r.seconds)} s (seq ${r.seq}).`;
  await loadStats();
}, ev.currentTarget));

$('#switch-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  run(async () => {
    const model = form.elements.model.value;
    const d = await api('PATCH', `/v1/domains/${enc(state.panelDomain)}`, { model });
    $('#switch-result').textContent = `Switching ${d.name} to ${model}: task ${d.task.id}.`;
    await loadStats();
  }, $('button[type=submit]', form));
});

$('#rollback-button').addEventListener('click', (ev) => run(async () => {
  const r = await api('POST', `/v1/domains/${enc(state.panelDomain)}/rollback-model`);
  $('#switch-result').textContent = `Rolling ${r.domain.name} back: task ${r.task.id}.`;
  await loadStats();
}, ev.currentTarget));

$('#drop-generation-button').addEventListener('click', (ev) => run(async () => {
  const name = state.panelDomain;
  if (!window.confirm(`Drop the other embedding generation of "${name}"? No rollback after this.`)) return;
  await api('POST', `/v1/domains/${enc(name)}/drop-old-generation`);
  $('#switch-result').textContent = `Dropped the other generation of ${name}.`;
  await loadStats();
}, ev.currentTarget));

$('#describe-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  run(async () => {
    const d = await api('PATCH', `/v1/domains/${enc(state.panelDomain)}`, { description: form.elements.description.value });
    notify(`Description of ${d.name} saved.`);
    await loadDomains();
  }, $('button', form));
});

$('#document-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  run(async () => {
    const v = formValues(form);
    const doc = { id: v.id, text: v.text };
    if (v.title) doc.title = v.title;
    if (v.url) doc.url = v.url;
    if (v.attributes) {
      let attributes;
      try { attributes = JSON.parse(v.attributes); } catch (e) { throw new Error(`attributes: not JSON (${e.message})`); }
      if (!attributes || typeof attributes !== 'object' || Array.isArray(attributes)) throw new Error('attributes: must be a JSON object');
      doc.attributes = attributes;
    }
    const r = await api('POST', `/v1/domains/${enc(v.domain)}/documents`, { documents: [doc] });
    $('#document-result').textContent = `Added to ${r.domain}: ${plural(r.documents, 'document')}, ${plural(r.chunks, 'chunk')} (seq ${r.seq}).`;
    for (const name of ['id', 'title', 'text', 'url', 'attributes']) form.elements[name].value = '';
    if (state.panelDomain === v.domain) await loadStats();
  }, $('button[type=submit]', form));
});

// ---------- principals and groups ----------

async function loadPrincipals() {
  state.principals = await api('GET', '/v1/principals');
  $('#principal-names').replaceChildren(...state.principals.map((p) => el('option', { value: p.name })));
  if (state.tab !== 'principals') return;
  const rows = state.principals.map((p) => el('tr', { 'data-principal': p.name },
    el('td', {}, el('strong', { text: p.name })),
    el('td', {}, el('span', { class: `badge kind-${p.kind}`, text: p.kind })),
    el('td', { text: p.superuser ? 'yes' : '' }),
    el('td', { text: fmtTime(p.created_at) }),
    el('td', { class: 'actions' },
      p.kind === 'group' ? actionButton('Members', `Members of ${p.name}`, () => openGroup(p.name), 'secondary') : null,
      actionButton('Delete', `Delete principal ${p.name}`, () => deletePrincipal(p.name), 'danger'))));
  fillRows($('#principals-table'), rows, 'No principals.');
}

$('#principal-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  run(async () => {
    const v = formValues(form);
    const p = await api('POST', '/v1/principals', { name: v.name, kind: v.kind });
    form.elements.name.value = '';
    notify(`Principal ${p.name} (${p.kind}) created.`);
    await loadPrincipals();
  }, $('button', form));
});

async function deletePrincipal(name) {
  if (!window.confirm(`Delete principal "${name}"? Its keys and grants stop working.`)) return;
  await api('DELETE', `/v1/principals/${enc(name)}`);
  if (state.group === name) closeGroup();
  notify(`Principal ${name} deleted.`);
  await loadPrincipals();
}

async function openGroup(name) {
  state.group = name;
  $('#members-group').textContent = name;
  $('#members-panel').hidden = false;
  await loadMembers();
}

function closeGroup() {
  state.group = null;
  $('#members-panel').hidden = true;
}
$('#members-close').addEventListener('click', closeGroup);

async function loadMembers() {
  const group = state.group;
  const members = await api('GET', `/v1/groups/${enc(group)}/members`);
  const items = members.map((m) => el('li', { 'data-member': m },
    el('span', { text: m }),
    actionButton('Remove', `Remove ${m} from ${group}`, async () => {
      await api('DELETE', `/v1/groups/${enc(group)}/members/${enc(m)}`);
      notify(`${m} removed from ${group}.`);
      await loadMembers();
    }, 'secondary small')));
  if (items.length === 0) items.push(el('li', { class: 'muted', text: 'No members.' }));
  $('#members-list').replaceChildren(...items);
}

$('#member-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  run(async () => {
    const member = form.elements.member.value.trim();
    await api('POST', `/v1/groups/${enc(state.group)}/members`, { member });
    form.elements.member.value = '';
    notify(`${member} added to ${state.group}.`);
    await loadMembers();
  }, $('button', form));
});

// ---------- grants ----------

async function loadGrants() {
  await Promise.all([loadDomainChoices(), loadPrincipals()]);
  const grants = await api('GET', '/v1/grants');
  const rows = grants.map((g) => el('tr', { 'data-grant': `${g.principal}/${g.domain}` },
    el('td', { text: g.principal }), el('td', { text: g.domain }),
    el('td', {}, el('span', { class: `badge role-${g.role}`, text: g.role })),
    el('td', { class: 'actions' }, actionButton('Revoke', `Revoke ${g.principal} on ${g.domain}`, async () => {
      if (!window.confirm(`Revoke ${g.principal}'s ${g.role} grant on ${g.domain}?`)) return;
      await api('DELETE', `/v1/grants/${enc(g.principal)}/${enc(g.domain)}`);
      notify(`Grant of ${g.principal} on ${g.domain} revoked.`);
      await loadGrants();
    }, 'danger'))));
  fillRows($('#grants-table'), rows, 'No grants.');
}

$('#grant-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  run(async () => {
    const v = formValues(form);
    await api('POST', '/v1/grants', { principal: v.principal, domain: v.domain, role: v.role });
    notify(`${v.principal} may now ${v.role} ${v.domain}.`);
    await loadGrants();
  }, $('button', form));
});

// ---------- keys ----------

function keyStatus(k) {
  if (k.revoked_at) return 'revoked';
  if (k.expires_at && k.expires_at <= Date.now()) return 'expired';
  return 'active';
}

async function loadKeys() {
  await loadPrincipals();
  const keys = await api('GET', '/v1/keys');
  keys.sort((a, b) => (b.created_at || 0) - (a.created_at || 0));
  const rows = keys.map((k) => {
    const status = keyStatus(k);
    return el('tr', { 'data-key': k.id },
      el('td', { class: 'mono' }, k.id, state.key && state.key.startsWith(k.id) ? el('div', { class: 'muted small', text: 'this session' }) : null),
      el('td', { text: k.principal }),
      el('td', { text: Array.isArray(k.domains) ? k.domains.join(', ') : 'all' }),
      el('td', { text: k.role || '—' }),
      el('td', { text: fmtTime(k.created_at) }),
      el('td', { text: k.expires_at ? fmtTime(k.expires_at) : 'never' }),
      el('td', {}, el('span', { class: `badge status-${status}`, text: status })),
      el('td', { class: 'actions' }, status === 'active'
        ? actionButton('Revoke', `Revoke key ${k.id}`, async () => {
          if (!window.confirm(`Revoke key ${k.id} of ${k.principal}? Clients using it are refused at once.`)) return;
          await api('DELETE', `/v1/keys/${enc(k.id)}`);
          notify(`Key ${k.id} revoked.`);
          await loadKeys();
        }, 'danger')
        : null));
  });
  fillRows($('#keys-table'), rows, 'No keys.');
}

$('#key-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  run(async () => {
    const v = formValues(form);
    const body = { principal: v.principal };
    const domains = commaList(v.domains);
    if (domains.length) body.domains = domains;
    if (v.role) body.role = v.role;
    if (v.expires_hours) body.expires_in = Math.round(Number(v.expires_hours) * 3600);
    const created = await api('POST', '/v1/keys', body);
    form.reset();
    $('#secret-key-id').textContent = created.key.id;
    $('#key-secret').textContent = created.secret;
    $('#copy-secret').textContent = 'Copy';
    $('#secret-box').hidden = false;
    notify(`Key ${created.key.id} created for ${created.key.principal}.`);
    await loadKeys();
  }, $('button[type=submit]', form));
});

$('#copy-secret').addEventListener('click', async () => {
  const secret = $('#key-secret').textContent;
  try {
    await navigator.clipboard.writeText(secret);
  } catch {
    const range = document.createRange();
    range.selectNodeContents($('#key-secret'));
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    document.execCommand('copy');
  }
  $('#copy-secret').textContent = 'Copied';
});

$('#secret-done').addEventListener('click', () => {
  $('#key-secret').textContent = '';
  $('#secret-key-id').textContent = '';
  $('#secret-box').hidden = true;
});

// ---------- audit ----------

async function loadAudit() {
  const v = formValues($('#audit-form'));
  const params = new URLSearchParams();
  for (const name of ['actor', 'action', 'target', 'outcome', 'limit']) if (v[name]) params.set(name, v[name]);
  if (v.since) {
    const since = new Date(v.since).getTime();
    if (!Number.isNaN(since)) params.set('since', String(since));
  }
  const entries = await api('GET', `/v1/audit?${params}`);
  const rows = entries.map((e) => el('tr', { 'data-audit': e.id },
    el('td', { class: 'nowrap', text: fmtTime(e.at) }),
    el('td', { text: e.actor }), el('td', { text: e.action }), el('td', { text: e.target || '' }),
    el('td', {}, el('span', { class: `badge outcome-${e.outcome}`, text: e.outcome })),
    el('td', { class: 'small', text: e.detail === null || e.detail === undefined ? '' : fmtValue(e.detail) }),
    el('td', { text: fmtValue(e.count) })));
  fillRows($('#audit-table'), rows, 'No entries match.');
  $('#audit-count').textContent = `(${entries.length} shown)`;
}

$('#audit-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  run(loadAudit, $('button', ev.currentTarget));
});

// ---------- search playground ----------

function branchCell(b) {
  if (!b) return el('td', { class: 'muted', text: '—' });
  return el('td', { class: 'nowrap' }, `#${b.rank} · ${fmtNum(b.score, 3)}`);
}

function renderFacets(facets) {
  const box = $('#facets');
  const fields = Object.entries(facets || {});
  if (fields.length === 0) {
    box.replaceChildren(el('p', { class: 'muted', text: 'No facets requested.' }));
    return;
  }
  box.replaceChildren(...fields.map(([field, counts]) => el('div', { class: 'facet', 'data-facet': field },
    el('h3', { text: field }),
    counts.length === 0 ? el('p', { class: 'muted', text: 'no values' }) : el('ul', {},
      counts.map((c) => el('li', {}, el('span', { text: fmtValue(c.value) }), ' ', el('span', { class: 'count', text: `(${c.count})` })))))));
}

$('#search-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  run(async () => {
    const v = formValues(form);
    const body = { query: v.query, mode: v.mode, k: Number(v.k) || 10 };
    const domains = Array.from(form.elements.domains.selectedOptions, (o) => o.value);
    if (domains.length) body.domains = domains;
    if (v.filter) body.filter = v.filter;
    const facets = commaList(v.facets);
    if (facets.length) body.facets = facets;
    if (form.elements.explain.checked) body.explain = true;
    const r = await api('POST', '/v1/search', body);
    const total = r.total || {};
    $('#search-summary').textContent = `${r.hits.length} hits · ${total.documents} documents, ${total.chunks} chunks matched · `
      + `domains ${(r.domains || []).join(', ')} · took ${fmtNum(r.took_ms)} ms`;
    renderFacets(r.facets);
    const rows = r.hits.map((h, i) => {
      const snippet = el('td', { class: 'snippet' });
      snippet.innerHTML = h.snippet; // escaped by the server; <em> marks only
      const title = el('td', {}, el('strong', { text: h.title || h.doc_id }), h.heading ? el('div', { class: 'muted small', text: h.heading }) : null);
      if (h.url && /^https?:\/\//i.test(h.url)) title.append(el('div', { class: 'small' }, el('a', { href: h.url, target: '_blank', rel: 'noopener noreferrer', text: h.url })));
      const row = el('tr', { class: 'hit', 'data-doc': `${h.domain}/${h.doc_id}` },
        el('td', { text: String(i + 1) }),
        el('td', { class: 'nowrap', text: fmtNum(h.score, 4) }),
        branchCell(h.bm25), branchCell(h.vector), title, snippet,
        el('td', { class: 'mono small' }, `${h.domain}/${h.doc_id}`, el('div', { class: 'muted', text: `chunk ${h.chunk_idx}` })));
      if (h.explain) snippet.append(el('details', {}, el('summary', { text: 'explain' }), el('pre', { text: JSON.stringify(h.explain, null, 2) })));
      return row;
    });
    fillRows($('#hits-table'), rows, 'No hits.');
    $('#search-results').hidden = false;
  }, $('button[type=submit]', form));
});

// ---------- live metrics ----------

async function loadMetrics() {
  const m = await api('GET', '/v1/stats');
  $('#m-qps').textContent = fmtNum(m.qps);
  $('#m-p50').textContent = `${fmtNum(m.p50_ms)} ms`;
  $('#m-p99').textContent = `${fmtNum(m.p99_ms)} ms`;
  $('#m-rpm').textContent = fmtNum(m.requests_last_minute, 0);
  $('#m-uptime').textContent = fmtDuration(m.uptime_seconds);
  const rows = (m.domains || []).map((d) => el('tr', { 'data-domain': d.domain, class: d.lag > 0 ? 'lagging' : '' },
    el('td', { text: d.domain }), el('td', { text: fmtValue(d.applied_seq) }),
    el('td', { text: fmtValue(d.last_seq) }), el('td', { text: fmtValue(d.lag) })));
  fillRows($('#lag-table'), rows, 'No domains.');
  $('#metrics-updated').textContent = `updated ${new Date().toTimeString().slice(0, 8)}`;
}

async function startMetrics() {
  stopMetrics();
  await loadMetrics();
  state.metricsTimer = setInterval(() => {
    if (document.hidden || !state.key || state.tab !== 'metrics') return;
    run(loadMetrics);
  }, METRICS_EVERY_MS);
}

function stopMetrics() {
  if (state.metricsTimer) clearInterval(state.metricsTimer);
  state.metricsTimer = null;
}

// ---------- start ----------

const saved = sessionStorage.getItem(KEY_STORAGE);
if (saved) {
  signIn(saved).catch((e) => signOut(`Sign-in failed: ${e.message}`));
}
