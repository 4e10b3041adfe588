// End-to-end test of the admin console (/admin) in a real browser: Debian's Chromium driven by
// playwright-core. It uses the page as a person would, and checks through the API (fetch) that
// what the page did took effect.
//
//   DARTMOUTH_URL=http://127.0.0.1:PORT DARTMOUTH_ADMIN_KEY=dk_… node admin.mjs
//
// Environment: DARTMOUTH_URL, DARTMOUTH_ADMIN_KEY (a superuser's key; required),
// DARTMOUTH_SCREENSHOTS (a folder for a screenshot of each section; optional),
// CHROMIUM (default /usr/bin/chromium). The fixture needs a domain `help` with the sample help
// centre (indexed with any embedder) and no domain `ui-test` nor principals `ui-agent`, `ui-group`.
// Exits non-zero with the failed step's name and message; prints one JSON line on success.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = (process.env.DARTMOUTH_URL || '').replace(/\/$/, '');
const ADMIN_KEY = process.env.DARTMOUTH_ADMIN_KEY || '';
const SHOTS = process.env.DARTMOUTH_SCREENSHOTS || '';
const EXECUTABLE = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT_MS = 15_000;

const DOMAIN = 'ui-test';
const SHOP = process.env.DARTMOUTH_SHOP || '';
const AGENT = 'ui-agent';
const GROUP = 'ui-group';

if (!BASE || !ADMIN_KEY) {
  console.error('admin.mjs: set DARTMOUTH_URL and DARTMOUTH_ADMIN_KEY');
  process.exit(2);
}
if (SHOTS) mkdirSync(SHOTS, { recursive: true });

const started = Date.now();
let steps = 0;
let page;
const problems = []; // page errors and console errors not expected by the current step
let allowedConsole = null; // a RegExp of console errors the current step expects
let revokedKey = null;

function fail(message) {
  throw new Error(message);
}

/** One step of the flow: a name in the failure message, page problems checked after it. */
async function step(name, fn) {
  steps += 1;
  const t0 = Date.now();
  try {
    await fn();
    if (problems.length) fail(`the page reported errors:\n  ${problems.join('\n  ')}`);
  } catch (e) {
    const error = new Error(`step ${steps} "${name}" failed: ${e.message}`);
    error.step = name;
    throw error;
  } finally {
    allowedConsole = null;
  }
  console.error(`ok ${steps} ${name} (${Date.now() - t0} ms)`);
}

async function shot(name) {
  if (!SHOTS) return;
  await page.screenshot({ path: join(SHOTS, `${String(steps).padStart(2, '0')}-${name}.png`), fullPage: true });
}

/** The API called directly (not through the page): [status, parsed body]. */
async function apiCall(method, path, key, body) {
  const headers = { Authorization: `Bearer ${key}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(`${BASE}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let data = text;
  try { data = JSON.parse(text); } catch { /* not JSON */ }
  return [r.status, data];
}

/** Waits until `locator` shows text matching `pattern` (a RegExp or substring). */
async function waitText(locator, pattern, what) {
  try {
    await locator.filter({ hasText: pattern }).first().waitFor({ state: 'visible' });
  } catch {
    const now = (await locator.allTextContents().catch(() => [])).join(' | ');
    fail(`${what}: expected ${pattern} but the page shows ${JSON.stringify(now.slice(0, 400))}`);
  }
}

/** Polls `check` (which may act on the page, e.g. click a refresh button) until it is true. */
async function until(check, what, ms = TIMEOUT_MS) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await check();
    if (last === true) return;
    if (Date.now() > deadline) fail(`${what} (last seen: ${JSON.stringify(last)})`);
    await page.waitForTimeout(100); // poll interval while waiting for the applier
  }
}

async function openTab(name) {
  await page.getByRole('tab', { name }).click();
  await page.getByRole('tabpanel', { name }).waitFor({ state: 'visible' });
}

async function main() {
  const browser = await chromium.launch({
    executablePath: EXECUTABLE,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT_MS);
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      if (allowedConsole && allowedConsole.test(msg.text())) return;
      problems.push(`console error: ${msg.text()}`);
    });
    const dialogs = [];
    page.on('dialog', (d) => { dialogs.push(d.message()); d.accept().catch(() => {}); });
    try {
      await flow(dialogs);
    } catch (e) {
      if (SHOTS) await page.screenshot({ path: join(SHOTS, 'failure.png'), fullPage: true }).catch(() => {});
      throw e;
    }
  } finally {
    await browser.close();
  }
}

async function flow(dialogs) {
  const domainsPanel = page.getByRole('tabpanel', { name: 'Domains' });
  const notice = page.locator('#notice');

  await step('open the console', async () => {
    const r = await page.goto(`${BASE}/admin`);
    if (!r || r.status() !== 200) fail(`GET /admin answered ${r && r.status()}`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  });

  await step('a wrong key is refused with the server message', async () => {
    allowedConsole = /status of 401/; // the browser logs the refused request itself
    await page.getByLabel('API key').fill('dk_00000000_this-is-not-a-valid-key-at-all-000000');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const error = page.locator('#signin-error');
    await waitText(error, /Sign-in failed: \S+/, 'sign-in error');
    const text = await error.textContent();
    const [, body] = await apiCall('GET', '/v1/principals', 'dk_00000000_this-is-not-a-valid-key-at-all-000000');
    const serverMessage = body && body.error && body.error.message;
    if (serverMessage && !text.includes(serverMessage)) fail(`error "${text}" lacks the server's "${serverMessage}"`);
    if (await page.locator('#app').isVisible()) fail('the console opened with a wrong key');
    await shot('signin-error');
  });

  await step('sign in with the admin key', async () => {
    await page.getByLabel('API key').fill(ADMIN_KEY);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await domainsPanel.locator('tr[data-domain="help"]').waitFor();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
  });

  await step('the session survives a reload', async () => {
    await page.reload();
    await domainsPanel.locator('tr[data-domain="help"]').waitFor();
  });

  await step('create a domain with the fake embedder', async () => {
    const form = page.locator('#domain-form');
    await form.getByLabel('Name').fill(DOMAIN);
    // Markup in a description is shown as text, never interpreted.
    await form.getByLabel('Description').fill('made by the <i>browser</i> test');
    await form.getByLabel('Embedder').selectOption('fake');
    await form.getByRole('button', { name: 'Create domain' }).click();
    await waitText(notice, `Domain ${DOMAIN} created`, 'notice');
    const row = domainsPanel.locator(`tr[data-domain="${DOMAIN}"]`);
    await waitText(row, 'made by the <i>browser</i> test', 'new domain row');
    if ((await row.locator('i').count()) !== 0) fail('a description was rendered as HTML');
  });

  await step('add documents (one through the page, one through the API)', async () => {
    const form = page.locator('#document-form');
    await form.getByLabel('Domain').selectOption(DOMAIN);
    await form.getByLabel('Document id').fill('reset-password');
    await form.getByLabel('Title').fill('Resetting your password');
    await form.getByLabel('Text').fill('Forgot your password? Open the account page and choose reset password; '
      + 'we email a link that works for one hour.');
    await form.getByLabel('Attributes (JSON object)').fill('{"topic": "account", "minutes": 2}');
    await form.getByRole('button', { name: 'Add document' }).click();
    await waitText(page.locator('#document-result'), `Added to ${DOMAIN}: 1 document`, 'ingest result');
    const [status, body] = await apiCall('POST', `/v1/domains/${DOMAIN}/documents`, ADMIN_KEY, {
      documents: [{ id: 'change-email', title: 'Changing the email of your account',
        text: 'The email address and the password of an account are changed on the account page.',
        attributes: { topic: 'account', minutes: 5 } }],
    });
    if (status !== 200) fail(`ingest through the API: ${status} ${JSON.stringify(body)}`);
  });

  await step('the domain stats show the documents', async () => {
    await page.getByRole('button', { name: `Stats of ${DOMAIN}` }).click();
    await waitText(page.locator('#panel-domain'), DOMAIN, 'stats panel');
    const documents = page.locator('#domain-stats [data-stat="documents"] dd');
    await until(async () => {
      const n = (await documents.textContent()).trim();
      if (n === '2') return true;
      await page.getByRole('button', { name: 'Refresh stats' }).click();
      return `documents ${n}`;
    }, 'the stats never showed 2 documents');
    await page.locator('#domain-stats [data-stat="chunks"] dd').filter({ hasText: /^[1-9]\d*$/ }).waitFor();
  });

  await step('reindex the domain', async () => {
    await page.getByRole('button', { name: 'Reindex' }).click();
    await waitText(page.locator('#reindex-result'), new RegExp(`Reindexed ${DOMAIN}: 2 documents, [1-9]\\d* chunks? in [\\d.]+ s`), 'reindex result');
    await shot('domains');
  });

  await step('switch the domain to a catalogue model, then drop the old generation', async () => {
    const form = page.locator('#switch-form');
    const options = await form.getByLabel('Switch to').locator('option').allTextContents();
    if (!options.some((o) => o.startsWith('all-minilm-l6-v2-int8'))) fail(`the model list shows ${options}`);
    await form.getByLabel('Switch to').selectOption('all-minilm-l6-v2-int8');
    await form.getByRole('button', { name: 'Switch model' }).click();
    await waitText(page.locator('#switch-result'), `Switching ${DOMAIN} to all-minilm-l6-v2-int8`, 'switch result');
    const generations = page.locator('#generations');
    await until(async () => {
      const t = (await generations.textContent()).trim();
      if (t.startsWith('Serving all-minilm-l6-v2-int8') && t.includes('Keeps fake-hash')) return true;
      await page.getByRole('button', { name: 'Refresh stats' }).click();
      return t;
    }, 'the switch never finished');
    const [, stats] = await apiCall('GET', `/v1/domains/${DOMAIN}`, ADMIN_KEY);
    if (stats.model.id !== 'all-minilm-l6-v2-int8' || stats.generations.other.state !== 'kept') {
      fail(`the API shows ${JSON.stringify(stats)}`);
    }
    const asked = dialogs.length;
    await page.getByRole('button', { name: 'Drop old generation' }).click();
    await waitText(page.locator('#switch-result'), `Dropped the other generation of ${DOMAIN}`, 'drop result');
    if (dialogs.length !== asked + 1) fail('dropping asked for no confirmation');
    const [, after] = await apiCall('GET', `/v1/domains/${DOMAIN}`, ADMIN_KEY);
    if (after.generations.other !== null) fail(`the API shows ${JSON.stringify(after.generations)}`);
  });

  await step('edit the description', async () => {
    const form = page.locator('#describe-form');
    await form.getByLabel('Description').fill('edited in the browser');
    await form.getByRole('button', { name: 'Save description' }).click();
    await waitText(domainsPanel.locator(`tr[data-domain="${DOMAIN}"]`), 'edited in the browser', 'edited domain row');
    const [, domains] = await apiCall('GET', '/v1/domains', ADMIN_KEY);
    const mine = domains.find((d) => d.name === DOMAIN);
    if (!mine || mine.description !== 'edited in the browser') fail(`the API shows ${JSON.stringify(mine)}`);
  });

  await step('create an agent and a group', async () => {
    await openTab('Principals & groups');
    const form = page.locator('#principal-form');
    const table = page.locator('#principals-table');
    await table.locator('tr[data-principal="reader"]').waitFor();
    await form.getByLabel('Name').fill(AGENT);
    await form.getByLabel('Kind').selectOption('agent');
    await form.getByRole('button', { name: 'Create principal' }).click();
    await waitText(table.locator(`tr[data-principal="${AGENT}"]`), 'agent', 'agent row');
    await form.getByLabel('Name').fill(GROUP);
    await form.getByLabel('Kind').selectOption('group');
    await form.getByRole('button', { name: 'Create principal' }).click();
    await waitText(table.locator(`tr[data-principal="${GROUP}"]`), 'group', 'group row');
  });

  await step('add the agent to the group', async () => {
    await page.getByRole('button', { name: `Members of ${GROUP}` }).click();
    await waitText(page.locator('#members-group'), GROUP, 'members panel');
    await page.locator('#member-form').getByLabel('Member').fill(AGENT);
    await page.getByRole('button', { name: 'Add member' }).click();
    await page.locator(`#members-list li[data-member="${AGENT}"]`).waitFor();
    const [status, members] = await apiCall('GET', `/v1/groups/${GROUP}/members`, ADMIN_KEY);
    if (status !== 200 || !members.includes(AGENT)) fail(`members through the API: ${status} ${JSON.stringify(members)}`);
    await shot('principals');
  });

  await step('grant the agent read on the domain', async () => {
    await openTab('Grants');
    const form = page.locator('#grant-form');
    await form.getByLabel('Principal').fill(AGENT);
    await form.getByLabel('Domain').selectOption(DOMAIN);
    await form.getByLabel('Role').selectOption('read');
    await form.getByRole('button', { name: 'Grant' }).click();
    await waitText(page.locator(`#grants-table tr[data-grant="${AGENT}/${DOMAIN}"]`), 'read', 'grant row');
    await shot('grants');
  });

  let secret;
  let keyId;
  await step('create a key: its secret is shown once and works', async () => {
    await openTab('Keys');
    const form = page.locator('#key-form');
    await form.getByLabel('Principal').fill(AGENT);
    await form.getByRole('button', { name: 'Create key' }).click();
    const box = page.getByRole('region', { name: 'New key secret' });
    await waitText(box, 'shown only once', 'secret warning');
    await page.locator('#key-secret').filter({ hasText: /^dk_\S{20,}$/ }).waitFor();
    secret = (await page.locator('#key-secret').textContent()).trim();
    keyId = (await page.locator('#secret-key-id').textContent()).trim();
    if (!secret.startsWith(keyId)) fail(`secret ${secret.slice(0, 12)}… does not start with the key id ${keyId}`);
    await page.getByRole('button', { name: 'Copy' }).click();
    await page.getByRole('button', { name: 'Copied' }).waitFor();
    await waitText(page.locator(`#keys-table tr[data-key="${keyId}"]`), 'active', 'new key row');
    await shot('keys-secret');
    const [status, domains] = await apiCall('GET', '/v1/domains', secret);
    if (status !== 200) fail(`the new secret was refused: ${status} ${JSON.stringify(domains)}`);
    const names = domains.map((d) => d.name);
    if (!names.includes(DOMAIN)) fail(`the agent's key does not see ${DOMAIN}: ${names}`);
    await page.getByRole('button', { name: 'I have stored it' }).click();
    await box.waitFor({ state: 'hidden' });
    if ((await page.content()).includes(secret)) fail('the secret is still in the page after dismissing it');
  });

  await step('revoke the key: it is refused', async () => {
    const before = dialogs.length;
    await page.getByRole('button', { name: `Revoke key ${keyId}` }).click();
    await waitText(page.locator(`#keys-table tr[data-key="${keyId}"]`), 'revoked', 'revoked key row');
    if (dialogs.length !== before + 1) fail('revoking asked for no confirmation');
    const [status, body] = await apiCall('GET', '/v1/domains', secret);
    if (status !== 401) fail(`the revoked key answered ${status} ${JSON.stringify(body)}`);
    revokedKey = keyId;
    await shot('keys');
  });

  await step('the audit log shows the domain creation', async () => {
    await openTab('Audit log');
    const form = page.locator('#audit-form');
    await form.getByLabel('Action').fill('create-domain');
    await form.getByLabel('Outcome').selectOption('ok');
    await form.getByRole('button', { name: 'Apply filters' }).click();
    const rows = page.locator('#audit-table tbody tr');
    // The unfiltered log (shown when the tab opened) stays until the filtered answer replaces
    // it: wait for that, then every row must be a domain creation and ours among them.
    const deadline = Date.now() + 10000;
    for (;;) {
      const actions = await page.locator('#audit-table tbody tr td:nth-child(3)').allTextContents();
      const texts = await rows.allTextContents();
      const others = actions.filter((a) => a !== 'create-domain');
      if (others.length === 0 && texts.some((t) => t.includes(DOMAIN))) break;
      if (Date.now() > deadline) fail(`the action filter let ${JSON.stringify(others)} through, or no row names ${DOMAIN}`);
      await page.waitForTimeout(50);
    }
    await shot('audit');
  });

  await step('hybrid search of the help centre', async () => {
    await openTab('Search playground');
    const form = page.locator('#search-form');
    await form.getByLabel('Domains').selectOption(['help']);
    await form.getByLabel('Query').fill('refund returns');
    await form.getByLabel('Mode').selectOption('hybrid');
    await form.getByRole('button', { name: 'Search' }).click();
    const hits = page.locator('#hits-table tr.hit');
    await hits.first().waitFor();
    await waitText(page.locator('#search-summary'), /\d+ hits · \d+ documents, \d+ chunks matched · domains help · took [\d.]+ ms/, 'summary');
    // A hit both branches found: bm25 and vector cells hold "#rank · score".
    const both = hits.filter({ has: page.locator('td:nth-child(3)', { hasText: /^#\d+ · / }) })
      .filter({ has: page.locator('td:nth-child(4)', { hasText: /^#\d+ · / }) });
    await both.first().waitFor();
    const snippet = await both.first().locator('td.snippet').innerHTML();
    if (!/<em>[^<]+<\/em>/.test(snippet)) fail(`the snippet has no <em> mark: ${snippet}`);
    await waitText(hits.first().locator('td:nth-child(7)'), /^help\//, 'document id');
    await waitText(page.locator('#facets'), 'No facets requested', 'facets area');
    if ((await page.locator('#hits-table td.snippet script').count()) > 0) fail('a script inside a snippet');
    await shot('search');
  });

  await step('facets of an attribute', async () => {
    const form = page.locator('#search-form');
    await form.getByLabel('Domains').selectOption([DOMAIN]);
    await form.getByLabel('Query').fill('password account');
    await form.getByLabel('Mode').selectOption('bm25');
    await form.getByLabel('Facets').fill('topic');
    await form.getByLabel('Filter').fill('minutes < 10');
    await form.getByRole('button', { name: 'Search' }).click();
    await waitText(page.locator('#search-summary'), `domains ${DOMAIN}`, 'summary');
    await waitText(page.locator('#facets [data-facet="topic"] li'), /account\s*\(2\)/, 'facet counts');
    await page.locator(`#hits-table tr.hit[data-doc="${DOMAIN}/reset-password"]`).waitFor();
    await shot('search-facets');
  });

  await step('live metrics', async () => {
    await openTab('Live metrics');
    for (const id of ['#m-qps', '#m-p50', '#m-p99']) {
      await page.locator(id).filter({ hasText: /^\d+(\.\d+)?( ms)?$/ }).waitFor();
    }
    await page.locator('#lag-table tr[data-domain="help"]').waitFor();
    const stamp = await page.locator('#metrics-updated').textContent();
    // The panel polls: the time stamp changes by itself.
    await page.locator('#metrics-updated').filter({ hasNotText: stamp }).waitFor({ timeout: 10_000 });
    await shot('metrics');
  });

  await step('connect a shop and sync it', async () => {
    if (!SHOP) fail('DARTMOUTH_SHOP is not set');
    allowedConsole = /status of 400/; // the refused connection below
    await openTab('Domains');
    await page.getByRole('button', { name: `Stats of ${DOMAIN}` }).click();
    await waitText(page.locator('#panel-domain'), DOMAIN, 'stats panel');
    const status = page.locator('#shop-status');
    await waitText(status, 'No shop connected.', 'shop status before');
    const form = page.locator('#shop-form');
    await form.getByLabel('Shop').fill(SHOP);
    await form.getByLabel('Token variable').fill('NO_SUCH_TOKEN_VARIABLE');
    await form.getByRole('button', { name: 'Connect shop' }).click();
    await waitText(page.locator('#notice'), 'token_env:', 'a missing token variable refused');
    await form.getByLabel('Token variable').fill('ACME_TOKEN');
    await form.getByLabel('Every').fill('15m');
    await form.getByRole('button', { name: 'Connect shop' }).click();
    await waitText(status, `${SHOP} (Admin API 2026-01, token from ACME_TOKEN), every 15m`, 'shop status connected');
    await page.getByRole('button', { name: 'Full sync' }).click();
    await until(async () => {
      const t = (await status.textContent()).trim();
      if (t.includes('Last run: full') && t.includes('27 added') && !t.includes('Syncing now')) return true;
      await page.getByRole('button', { name: 'Refresh stats' }).click();
      return t;
    }, 'the shop sync never finished');
    const [, c] = await apiCall('GET', `/v1/domains/${DOMAIN}/shopify/status`, ADMIN_KEY);
    if (c.state.last.added !== 27 || c.state.error) fail(`the API shows ${JSON.stringify(c)}`);
    await shot('shop');
  });

  await step('delete the agent', async () => {
    await openTab('Principals & groups');
    const row = page.locator(`#principals-table tr[data-principal="${AGENT}"]`);
    await row.waitFor();
    await page.getByRole('button', { name: `Delete principal ${AGENT}` }).click();
    await row.waitFor({ state: 'detached' });
    await waitText(notice, `Principal ${AGENT} deleted`, 'notice');
  });

  await step('delete the domain', async () => {
    await openTab('Domains');
    const row = domainsPanel.locator(`tr[data-domain="${DOMAIN}"]`);
    await row.waitFor();
    const before = dialogs.length;
    await page.getByRole('button', { name: `Delete domain ${DOMAIN}` }).click();
    await row.waitFor({ state: 'detached' });
    if (dialogs.length !== before + 1) fail('deleting asked for no confirmation');
    await domainsPanel.locator('tr[data-domain="help"]').waitFor();
    await shot('domains-after');
  });

  await step('sign out', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    const stored = await page.evaluate(() => sessionStorage.length);
    if (stored !== 0) fail('the key stayed in session storage');
  });
}

main().then(() => {
  const seconds = Math.round((Date.now() - started) / 100) / 10;
  console.log(JSON.stringify({ ok: true, steps, seconds, revoked_key: revokedKey }));
}, (e) => {
  console.error(`admin.mjs: ${e.message}`);
  process.exit(1);
});
