// End-to-end test of the Strom console in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core). Run by tests/ui.rs:
//   node console.mjs <console-url> <bootstrap> <screenshot-dir>            the scenario
//   node console.mjs --bench <console-url> <big-topic> <wide-topic> <screenshot-dir> [n]
//                                                      page load times (median of n)
// The scenario asks the Rust side to drive a consumer group: it prints "STEP <name>" and
// waits for a line "DONE" on stdin. Any failed check throws: the exit status is 1.
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function step(name) {
  console.log(`STEP ${name}`);
  const { value, done } = await lines.next();
  if (done || value.trim() !== 'DONE') throw new Error(`step ${name}: the driver answered ${value}`);
}

// Polls `fn` until it returns a truthy value.
async function until(what, fn, timeout = 45000) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await new Promise(r => setTimeout(r, 200));
  }
}

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
}

async function ready(page, name) {
  await page.waitForSelector(`main[data-ready="${name}"]`, { timeout: 45000 });
}

async function open(page, base, hash, name) {
  await page.goto(`${base}/${hash}`);
  await ready(page, name);
}

async function shot(page, dir, name) {
  const path = join(dir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot ${path}`);
}

const text = (page, sel) => page.locator(sel).innerText();

async function scenario(base, bootstrap, dir) {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('dialog', d => d.accept());
  const errors = [];
  page.on('pageerror', e => errors.push(e.message));
  try {
    // Overview.
    await open(page, base, '#/', 'overview');
    check((await text(page, '#ov-brokers')) === '1', 'overview shows one broker');
    check((await text(page, '#brokers')).includes('controller'), 'overview names the controller');
    await shot(page, dir, '01-overview');

    // Create a topic through the form.
    await open(page, base, '#/topics', 'topics');
    await page.click('#create-topic summary');
    await page.fill('#new-topic-name', 'ui-orders');
    await page.fill('#new-topic-partitions', '2');
    await page.click('#create-topic-button');
    await page.waitForURL(/#\/topics\/ui-orders$/);
    await ready(page, 'topic');
    check((await text(page, '#topic-name')) === 'ui-orders', 'the created topic page opens');
    await until('two partitions with leaders', async () => {
      await open(page, base, '#/topics/ui-orders', 'topic');
      return (await page.locator('#partitions-table tbody tr').count()) === 2;
    });
    await shot(page, dir, '02-topic-partitions');

    // A second topic, deleted again through the UI.
    await open(page, base, '#/topics', 'topics');
    await page.click('#create-topic summary');
    await page.fill('#new-topic-name', 'ui-scratch');
    await page.click('#create-topic-button');
    await page.waitForURL(/#\/topics\/ui-scratch$/);
    await ready(page, 'topic');
    await page.click('#delete-topic');
    await page.waitForURL(/#\/topics$/);
    await ready(page, 'topics');
    await until('ui-scratch gone from the list', async () => {
      await open(page, base, '#/topics?filter=ui-', 'topics');
      const rows = await page.locator('#topics-table tbody tr[data-topic]').allInnerTexts();
      return rows.length === 1 && rows[0].includes('ui-orders');
    });
    await shot(page, dir, '03-topics');

    // Produce three messages through the form.
    await open(page, base, '#/topics/ui-orders?tab=messages&partition=0&produce=1', 'topic');
    const produce = async (key, value, type, headers) => {
      await page.fill('#produce-partition', '0');
      await page.fill('#produce-key', key);
      await page.fill('#produce-value', value);
      await page.selectOption('#produce-type', type);
      await page.fill('#produce-headers', headers);
      await page.click('#produce-send');
      return until(`produced ${key}`, async () => {
        const t = await page.locator('#produce-result').innerText();
        if (t.includes('Produced') || (await page.locator('#produce-result .error').count()) > 0) return t;
        return null;
      });
    };
    let r = await produce('alice', '{"item":"book","qty":1}', 'JSON', 'source=web');
    check(r.includes('Produced to partition 0 at offset 0'), `first produce: ${r}`);
    r = await produce('bob', '{"item":"lamp","qty":2}', 'JSON', 'source=shop');
    check(r.includes('at offset 1'), `second produce: ${r}`);
    r = await produce('carol', 'plain text, not JSON', 'STRING', '');
    check(r.includes('at offset 2'), `third produce: ${r}`);
    const bad = await (async () => {
      await page.selectOption('#produce-type', 'JSON');
      await page.fill('#produce-value', '{oops');
      await page.click('#produce-send');
      return until('a JSON error', () => page.locator('#produce-result .error').innerText());
    })();
    check(bad.includes('not JSON'), 'a value that is not JSON is refused before sending');

    // Browse from the earliest offset: three rows, JSON pretty-printed.
    await page.selectOption('#browse-mode', 'earliest');
    await page.click('#browse-go');
    await until('three messages', async () => (await page.locator('.msg-row').count()) === 3);
    const first = await page.locator('.msg-row').first().innerText();
    check(first.includes('alice') && first.includes('"item": "book"') && first.includes('source=web'),
      'the first message shows key, pretty JSON value and header');
    await shot(page, dir, '04-messages');

    // Filters run on the server.
    await page.fill('#filter-value', 'lamp');
    await page.click('#browse-go');
    await until('one lamp', async () => {
      const rows = await page.locator('.msg-row').allInnerTexts();
      return rows.length === 1 && rows[0].includes('bob');
    });
    check(page.url().includes('value=lamp'), 'the filter is in the URL');
    await page.fill('#filter-value', '');
    await page.fill('#filter-header', 'web');
    await page.click('#browse-go');
    await until('one header match', async () => {
      const rows = await page.locator('.msg-row').allInnerTexts();
      return rows.length === 1 && rows[0].includes('alice');
    });
    await page.fill('#filter-header', '');
    await page.fill('#filter-key', 'nobody');
    await page.click('#browse-go');
    await until('no match', () => page.locator('#no-messages').count());
    // By offset, values as text.
    await page.fill('#filter-key', '');
    await page.selectOption('#browse-mode', 'offset');
    await page.fill('#browse-at', '2');
    await page.selectOption('#value-format', 'text');
    await page.click('#browse-go');
    await until('offset 2 only', async () => {
      const rows = await page.locator('.msg-row').allInnerTexts();
      return rows.length === 1 && rows[0].includes('plain text, not JSON');
    });
    await shot(page, dir, '05-messages-filtered');
    // Every partition at once, merged by time (partition 1 is empty).
    await page.fill('input[name=limit]', '50');
    await page.selectOption('#browse-partition', 'all');
    await page.selectOption('#browse-mode', 'earliest');
    await page.click('#browse-go');
    await until('three messages from all partitions', async () =>
      (await page.locator('.msg-row').count()) === 3 && (await text(page, '#browse-summary')).includes('All 2 partitions'));
    await page.selectOption('#browse-partition', '0');
    // By time: from a timestamp before the first record, one record a page, then onwards.
    await page.selectOption('#browse-mode', 'timestamp');
    await page.fill('#browse-at', '2020-01-01T00:00');
    await page.fill('input[name=limit]', '1');
    await page.click('#browse-go');
    await until('offset 0 from the timestamp', async () => {
      const rows = await page.locator('.msg-row').allInnerTexts();
      return rows.length === 1 && rows[0].includes('alice');
    });
    await page.click('#browse-next');
    await until('the next page: offset 1', async () => {
      const rows = await page.locator('.msg-row').allInnerTexts();
      return rows.length === 1 && rows[0].includes('bob');
    });

    // Configs.
    await open(page, base, '#/topics/ui-orders?tab=configs', 'topic');
    await page.selectOption('#config-name', 'retention.ms');
    await page.fill('#config-value', '3600000');
    await page.click('#config-form button');
    await until('retention set', async () => (await text(page, '#configs-table')).includes('3600000'));
    await shot(page, dir, '06-topic-configs');

    // A consumer group, driven by the Rust side: caught up, then lag up, then down.
    await step('group-caught-up');
    await open(page, base, '#/groups', 'groups');
    await until('the group listed', async () => (await text(page, '#groups-table')).includes('ui-group'));
    await shot(page, dir, '07-groups');
    await open(page, base, '#/groups/ui-group', 'group');
    await until('lag 0 and a member', async () =>
      (await text(page, '#group-lag')) === '0' && (await text(page, '#members-table')).includes('ui-consumer'));
    await step('lag-up');
    await until('lag 50', async () => (await text(page, '#group-lag')) === '50');
    await until('the lag chart has a line', async () => {
      if ((await page.locator('#lag-chart svg path').count()) === 1) return true;
      // Not yet: throw what the console's history holds, so a timeout says why.
      const h = await (await fetch(`${base}/api/console/history/lag/ui-group`)).text();
      throw new Error(`no line yet; history: ${h.slice(0, 300)}`);
    });
    await shot(page, dir, '08-group-lagging');
    // An active group cannot be reset: Kafka's refusal is shown.
    await page.selectOption('#reset-to', 'earliest');
    await page.fill('#reset-topic', 'ui-orders');
    await page.click('#reset-preview');
    await until('a preview', () => page.locator('#reset-table').count());
    check((await text(page, '#reset-preview-note')).includes('Kafka will refuse'), 'the preview warns that the group is active');
    await page.click('#reset-apply');
    await until('the refusal', async () => (await text(page, '#reset-result')).includes('can only be reset if the group'));
    await step('lag-down');
    await until('lag back to 0', async () => (await text(page, '#group-lag')) === '0');
    await shot(page, dir, '09-group-caught-up');

    // The consumer leaves; reset to the earliest offsets with a preview, then apply.
    await step('stop');
    await until('no members', async () => (await text(page, '#members-table')).includes('No members'));
    await page.selectOption('#reset-to', 'earliest');
    await page.fill('#reset-topic', 'ui-orders');
    await page.click('#reset-preview');
    await until('a preview with new offsets 0', async () => {
      const rows = await page.locator('#reset-table tbody tr').allInnerTexts();
      return rows.length === 2 && (await page.locator('#reset-table td.new').allInnerTexts()).every(t => t === '0');
    });
    check((await text(page, '#group-lag')) === '0', 'the preview changed nothing');
    await shot(page, dir, '10-reset-preview');
    await page.click('#reset-apply');
    await until('reset done', () => page.locator('#reset-done').count());
    await until('lag 53 after the reset', async () => (await text(page, '#group-lag')) === '53');
    await shot(page, dir, '11-reset-applied');

    // The overview's throughput chart has samples by now.
    await open(page, base, '#/', 'overview');
    await until('a throughput line', async () => (await page.locator('#throughput-chart svg path').count()) === 1);
    await shot(page, dir, '12-overview-throughput');

    // Schemas, from the Schema Registry the driver started (two versions of one subject).
    await open(page, base, '#/schemas', 'schemas');
    await until('the subject listed', async () => (await text(page, '#schemas-table')).includes('ui-orders-value'));
    check((await text(page, 'tr[data-subject="ui-orders-value"]')).includes('AVRO'), 'the subject is Avro');
    await page.click('a[href="#/schemas/ui-orders-value"]');
    await ready(page, 'schema');
    check((await text(page, '#schema-version')) === '2', 'the latest version is shown');
    check((await text(page, '#schema-text')).includes('"note"'), 'version 2 has the added field');
    await shot(page, dir, '13-schema');
    await page.selectOption('#schema-versions', '1');
    await until('version 1', async () => (await page.locator('main[data-ready="schema"] #schema-version').innerText()) === '1');
    check(!(await text(page, '#schema-text')).includes('"note"'), 'version 1 has no such field');

    // Connectors, from the Connect worker the driver started: pause, then resume.
    await open(page, base, '#/connectors', 'connectors');
    const state = () => text(page, 'tr[data-connector="ui-file"] [data-state]');
    await until('the connector running', async () => (await state()) === 'RUNNING');
    check((await text(page, 'tr[data-connector="ui-file"]')).includes('FileStreamSource'), 'its class is shown');
    await shot(page, dir, '14-connectors');
    await page.click('tr[data-connector="ui-file"] [data-action="pause"]');
    await until('the connector paused', async () => (await state()) === 'PAUSED');
    await page.click('tr[data-connector="ui-file"] [data-action="resume"]');
    await until('the connector running again', async () => (await state()) === 'RUNNING');
    check(errors.length === 0, `no script errors on the pages (${errors.join('; ')})`);
  } catch (e) {
    await shot(page, dir, 'failure').catch(() => {});
    throw e;
  } finally {
    await browser.close();
  }
}

// Median of `n` full page loads (navigation start to the page's content rendered).
async function bench(base, topic, wide, dir, n) {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const out = {};
  const t = encodeURIComponent(topic);
  // [name, route, page, text the rendered page must contain]
  const cases = [
    ['topics', '#/topics', 'topics', '1,000,000'],
    ['wide_topic_partitions', `#/topics/${encodeURIComponent(wide)}`, 'topic', '1–50 of 1,000'],
    ['wide_topic_partitions_last_page', `#/topics/${encodeURIComponent(wide)}?offset=950`, 'topic', '951–1000 of 1,000'],
    ['messages_latest', `#/topics/${t}?tab=messages&partition=0`, 'topic', 'read 50 from offset 999,950, 50 shown'],
    ['messages_at_offset', `#/topics/${t}?tab=messages&partition=0&mode=offset&at=500000`, 'topic', 'read 50 from offset 500,000, 50 shown'],
    ['messages_filtered_10k', `#/topics/${t}?tab=messages&partition=0&mode=offset&at=0&value=needle`, 'topic', 'read 10,000 from offset 0, 0 shown'],
    ['messages_filtered_100k', `#/topics/${t}?tab=messages&partition=0&mode=offset&at=0&value=needle&scan=100000`, 'topic', 'read 100,000 from offset 0, 0 shown'],
    ['messages_filtered_latest_100k', `#/topics/${t}?tab=messages&partition=0&value=widget-999%22&scan=100000`, 'topic', 'from offset 900,000, 50 shown'],
    ['overview', '#/', 'overview', 'Throughput'],
  ];
  try {
    for (const [name, hash, ready_, expect] of cases) {
      const times = [];
      for (let i = 0; i < n; i++) {
        await page.goto('about:blank');
        await page.goto(`${base}/${hash}`);
        await ready(page, ready_);
        times.push(Number(await page.locator('main').getAttribute('data-rendered-at')));
      }
      times.sort((a, b) => a - b);
      out[name] = { median_ms: times[Math.floor(times.length / 2)], min_ms: times[0], max_ms: times[times.length - 1] };
      if (await page.locator('.error').count()) throw new Error(`${name}: ${await page.locator('.error').first().innerText()}`);
      const shown = await page.locator('main').innerText();
      if (!shown.includes(expect)) throw new Error(`${name}: the page does not show '${expect}'`);
      await shot(page, dir, `bench-${name}`);
    }
  } finally {
    await browser.close();
  }
  console.log(`BENCH ${JSON.stringify(out)}`);
}

const args = process.argv.slice(2);
try {
  if (args[0] === '--bench') {
    mkdirSync(args[4], { recursive: true });
    await bench(args[1], args[2], args[3], args[4], Number(args[5] || 5));
  } else {
    if (args.length !== 3) throw new Error('usage: node console.mjs <console-url> <bootstrap> <screenshot-dir>');
    mkdirSync(args[2], { recursive: true });
    await scenario(args[0], args[1], args[2]);
  }
  console.log('PASS');
  process.exit(0);
} catch (e) {
  console.error(`FAIL: ${e.stack || e}`);
  process.exit(1);
}
