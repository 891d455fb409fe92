/*
 * Browser test of tarheel's dashboard: Debian's chromium driven by
 * playwright-core, against a real `tarheel serve` and the emulators that
 * tests/integration/010-dashboard-browser.sh starts. Every step must pass;
 * the first that does not ends the run with exit 1, its reason and a
 * screenshot of the page at that moment.
 *
 * Environment: TARHEEL_URL, DASH_USER, DASH_PASSWORD, QOYOD_KEY (the good
 * key), PULL_FROM / PULL_TO (the range whose PULL_COUNT old orders the
 * Salla emulator holds), SHOTS (directory for the screenshots),
 * CHROMIUM (default /usr/bin/chromium).
 */
'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const env = (k, d) => {
  const v = process.env[k] || d;
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const BASE = env('TARHEEL_URL');
const USER = env('DASH_USER');
const PASSWORD = env('DASH_PASSWORD');
const QOYOD_KEY = env('QOYOD_KEY');
const FROM = env('PULL_FROM');
const TO = env('PULL_TO');
const COUNT = Number(env('PULL_COUNT'));
const SHOTS = env('SHOTS');
const ZID_STORE = env('ZID_STORE');
fs.mkdirSync(SHOTS, { recursive: true });

let page;
let n = 0;
async function step(name, fn) {
  n++;
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok ${n} - ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    console.log(`not ok ${n} - ${name}\n  ${String(e && e.stack || e).split('\n').slice(0, 4).join('\n  ')}`);
    if (page) await page.screenshot({ path: path.join(SHOTS, 'FAILED.png'), fullPage: true }).catch(() => {});
    throw e;
  }
}
async function shot(name, viewportOnly) {
  await page.waitForTimeout(150); // let the last paint settle
  await page.screenshot({ path: path.join(SHOTS, name + '.png'), fullPage: !viewportOnly });
}
const text = (sel) => page.locator(sel).first().innerText();
const attr = (sel, a) => page.locator(sel).first().getAttribute(a);
async function rows() {
  return page.$$eval('#orders-body tr[data-order]', (trs) => trs.map((tr) => ({
    id: tr.getAttribute('data-order'),
    state: tr.querySelector('.badge').getAttribute('data-state'),
    reason: (tr.querySelector('.reason') || { textContent: '' }).textContent,
  })));
}
/* Applies the filters and waits for the list they ask for. */
async function apply() {
  await page.click('#apply-filters');
  await page.waitForSelector('#orders-body:not([data-loading])');
}
async function filterState(state) {
  await page.selectOption('#f-state', state);
  await apply();
}
/* Polls the order list (filter re-applied) until pred(rows) holds. */
async function until(pred, what, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    await apply();
    const r = await rows();
    if (pred(r)) return r;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; rows: ${JSON.stringify(r).slice(0, 400)}`);
    await page.waitForTimeout(400);
  }
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 820 }, locale: 'ar-SA', timezoneId: 'Asia/Riyadh' });
  page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  try {
    await step('the login page is Arabic, right to left, and refuses a wrong password', async () => {
      await page.goto(BASE + '/');
      await page.waitForSelector('#login-form');
      assert.strictEqual(await attr('html', 'dir'), 'rtl');
      assert.strictEqual(await attr('html', 'lang'), 'ar');
      assert.match(await text('h1'), /تسجيل الدخول/);
      await page.fill('#login-user', USER);
      await page.fill('#login-password', 'not-the-password');
      await page.click('#login-submit');
      await page.waitForSelector('#login-msg .alert.error');
      assert.match(await text('#login-msg'), /wrong user name or password/);
      await shot('login-ar');
    });

    await step('log in: the orders page, no orders yet, the session cookie is HttpOnly and SameSite=Lax', async () => {
      await page.fill('#login-password', PASSWORD);
      await page.click('#login-submit');
      await page.waitForSelector('#orders');
      await page.waitForSelector('#orders-body td.empty');
      const c = (await ctx.cookies()).find((k) => k.name === 'th_session');
      assert.ok(c, 'no th_session cookie');
      assert.strictEqual(c.httpOnly, true);
      assert.strictEqual(c.sameSite, 'Lax');
      assert.strictEqual(await page.evaluate(() => document.cookie.includes('th_session')), false);
    });

    await step('a state-changing request without the CSRF token is refused (403)', async () => {
      const r = await page.evaluate(async () => {
        const x = await fetch('/api/v1/orders/retry', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
        return { status: x.status, body: await x.json() };
      });
      assert.strictEqual(r.status, 403);
      assert.match(r.body.error.message, /CSRF/);
    });

    await step('connect: a wrong Qoyod key shows Qoyod\'s exact error; the right one lists inventory locations, saved for the store', async () => {
      await page.click('#nav-connect');
      await page.waitForSelector('#key-form');
      await page.fill('#qoyod-key', 'wrong-key');
      await page.click('#key-check');
      await page.waitForSelector('#key-msg .alert.error');
      const msg = await text('#key-msg');
      assert.match(msg, /Qoyod/);
      assert.match(msg, /API key|API-KEY|key/i);
      await page.fill('#qoyod-key', QOYOD_KEY);
      await page.click('#key-check');
      await page.waitForSelector('#step2:not(.hidden)');
      const options = await page.$$eval('#inv-select option', (o) => o.map((x) => x.value));
      assert.ok(options.length >= 1, 'no inventory location listed');
      await page.selectOption('#inv-select', options[options.length - 1]);
      await page.click('#inv-save');
      await page.waitForSelector('#inv-msg .alert.ok');
      await page.waitForSelector('#health .card.conn.state-active');
      assert.match(await text('#health .card.conn'), new RegExp('المخزون ' + options[options.length - 1]));
      await shot('connect-ar');
    });

    await step('connect a Zid store: OAuth through the platform and back, the store listed as active', async () => {
      await page.waitForSelector('#connect-zid');
      await page.click('#connect-zid');
      await page.waitForURL(/#\/connect\/done\/zid\//, { timeout: 20000 });
      await page.waitForSelector('#connect-outcome .alert.ok');
      assert.match(await text('#connect-outcome'), new RegExp(`زد.*${ZID_STORE}`));
      await page.waitForSelector('#health .card.conn.state-active >> nth=1');
      assert.match(await text('#health'), new RegExp(ZID_STORE));
      await shot('connect-zid-ar');
    });

    await step(`pull orders ${FROM}..${TO}: a live progress bar to done, ${COUNT} new orders listed as not transferred`, async () => {
      await page.click('#nav-orders');
      await page.waitForSelector('#orders');
      await page.click('#pull-open');
      await page.fill('#pull-from', FROM);
      await page.fill('#pull-to', TO);
      await page.click('#pull-start');
      await page.waitForSelector('#pull-progress:not(.hidden)');
      await page.waitForSelector('#pull-progress.done', { timeout: 30000 });
      assert.strictEqual(await attr('#pull-progress', 'aria-valuenow'), '100');
      assert.match(await text('#pull-label'), new RegExp(`${COUNT} من ${COUNT}`));
      assert.match(await text('#pull-status'), new RegExp(`${COUNT} جديد`));
      await shot('pull-ar', true);
      await page.click('#pull-close');
      const r = await until((r) => r.length === COUNT, `${COUNT} orders`);
      assert.ok(r.every((o) => o.state === 'not_transferred'), 'a pulled order is not "not transferred"');
    });

    await step('filter: by text (one order number) and by state', async () => {
      const r = await rows();
      await page.fill('#f-text', r[3].id);
      await apply();
      const one = await rows();
      assert.strictEqual(one.length, 1);
      assert.strictEqual(one[0].id, r[3].id);
      await page.fill('#f-text', '');
      await filterState('transferred');
      await page.waitForSelector('#orders-body td.empty');
      await filterState('');
    });

    let picked;
    await step('select two orders and transfer them: both become transferred', async () => {
      await page.waitForSelector('#orders-body tr[data-order]');
      const r = await rows();
      picked = [r[0].id, r[1].id];
      for (const id of picked) await page.check(`#orders-body tr[data-order="${id}"] input.sel`);
      assert.match(await text('#transfer-selected'), /\(2\)/);
      await page.click('#transfer-selected');
      await page.waitForSelector('#orders-msg .alert.ok');
      await until((x) => picked.every((id) => (x.find((o) => o.id === id) || {}).state === 'transferred'), 'the two orders transferred');
    });

    await step('transfer a range: the confirmation states the count; afterwards every order has ended, those without SKU failed with their reason', async () => {
      await page.click('#range-open');
      await page.fill('#range-from', FROM);
      await page.fill('#range-to', TO);
      await page.click('#range-count');
      await page.waitForSelector('#range-status .alert.warn');
      assert.match(await text('#range-status'), new RegExp(`سيتم ترحيل ${COUNT - 2} طلب`));
      await shot('transfer-range-ar', true);
      await page.click('#range-confirm');
      await page.waitForSelector('#orders-msg .alert.ok');
      const r = await until((x) => x.length === COUNT && x.every((o) => o.state === 'transferred' || o.state === 'failed'), 'every order transferred or failed', 60000);
      const failed = r.filter((o) => o.state === 'failed');
      assert.ok(failed.length >= 1, 'no order failed (every 7th has a product without SKU)');
      assert.ok(failed.every((o) => /SKU/.test(o.reason)), 'a failed order shows no reason: ' + JSON.stringify(failed));
      await shot('orders-ar');
    });

    await step('read a failure reason: filter failed, open the order, its reason, what to do and its history', async () => {
      await filterState('failed');
      const r = await rows();
      assert.ok(r.length >= 1 && r.every((o) => o.state === 'failed'));
      await page.click(`#orders-body tr[data-order="${r[0].id}"] a.num`);
      await page.waitForSelector('#order-history tbody tr');
      assert.match(await text('#order-reason'), /SKU/);
      assert.match(await text('#order-reason'), /ما العمل/);
      /* what to do is Arabic (i18n.js todo_<CODE>), not the server's English remedy */
      assert.match(await text('#order-reason'), /ما العمل: [\u0600-\u06FF]/);
      assert.doesNotMatch(await text('#order-reason'), /then retry$/);
      /* the reason itself is Arabic too (i18n.js reasons), naming the item */
      assert.match(await text('#order-reason'), /بلا رمز SKU في سلة/);
      assert.doesNotMatch(await text('#order-reason'), /has no SKU/);
      assert.ok((await page.$$('#order-history tbody tr')).length >= 2, 'the history has fewer than 2 events');
      /* and so are the history's events (i18n.js ev_*): pulled, queued, failed */
      const events = await page.$$eval('#order-history tbody tr td:nth-child(2)', (tds) => tds.map((td) => td.textContent));
      assert.ok(events.includes('سُحب من المتجر') && events.includes('فشل'), 'history events not in Arabic: ' + events.join(', '));
      await shot('order-ar');
      await page.click('#nav-orders');
      await page.waitForSelector('#orders');
    });

    await step('retry failed: the failed orders are queued again', async () => {
      await page.click('#retry-failed');
      await page.waitForSelector('#orders-msg .alert.ok');
      assert.match(await text('#orders-msg'), /أُعيدت محاولة [1-9]/);
    });

    await step('settings: change the trigger status and save; the API has it', async () => {
      await page.click('#nav-settings');
      await page.waitForSelector('#s-trigger');
      await page.selectOption('#s-trigger', 'completed');
      await page.click('#settings-save');
      await page.waitForSelector('#settings-msg .alert.ok');
      const st = await page.evaluate(async () => (await fetch('/api/v1/connections/1/settings')).json());
      assert.strictEqual(st.trigger, 'completed');
      await shot('settings-ar');
    });

    await step('reports: the month of the pulled orders with its counts', async () => {
      await page.click('#nav-reports');
      await page.fill('#report-from', FROM.slice(0, 7));
      await page.fill('#report-to', TO.slice(0, 7));
      await page.click('#report-show');
      await page.waitForSelector('#report-table tbody tr');
      const first = await page.$$eval('#report-table tbody tr:first-child td', (td) => td.map((x) => x.innerText));
      assert.strictEqual(first[0], FROM.slice(0, 7));
      assert.strictEqual(Number(first[1]), COUNT);
      assert.strictEqual(Number(first[2]) + Number(first[3]), COUNT);
      await page.waitForSelector('#report-chart .bar');
      await page.waitForSelector('#recon-na, #recon pre');
      await shot('reports-ar');
    });

    await step('activity: recent errors, and an order found by its id with its history', async () => {
      await page.click('#nav-activity');
      await page.waitForSelector('#errors-body tr');
      assert.match(await text('#errors-body'), /SKU/);
      await page.fill('#activity-q', picked[0]);
      await page.click('#activity-search');
      await page.waitForSelector('#activity-result .card table tr');
      assert.match(await text('#activity-result'), new RegExp(picked[0]));
      await shot('activity-ar');
    });

    await step('switch to English: left to right, English labels on every page, and back to Arabic', async () => {
      await page.click('#lang');
      await page.waitForFunction(() => document.documentElement.dir === 'ltr');
      assert.strictEqual(await attr('html', 'lang'), 'en');
      assert.strictEqual(await text('#nav-orders'), 'Orders');
      const pages = [['activity', '#errors-body tr'], ['orders', '#orders-body tr'], ['connect', '#health .card'],
        ['settings', '#s-trigger'], ['reports', '#report-table tbody tr']];
      for (const [p, sel] of pages) {
        await page.click('#nav-' + p);
        await page.waitForSelector(sel);
        await page.waitForLoadState('networkidle');
        assert.strictEqual(await attr('html', 'dir'), 'ltr');
        await shot(p + '-en');
      }
      await page.click('#nav-orders');
      await filterState('failed');
      const r = await rows();
      await page.click(`#orders-body tr[data-order="${r[0].id}"] a.num`);
      await page.waitForSelector('#order-history tbody tr');
      assert.match(await text('#order-reason'), /What to do/);
      assert.match(await text('#order-reason'), /has no SKU in Salla/);
      const enEvents = await page.$$eval('#order-history tbody tr td:nth-child(2)', (tds) => tds.map((td) => td.textContent));
      assert.ok(enEvents.includes('pulled') && enEvents.includes('failed'), 'history events: ' + enEvents.join(', '));
      await shot('order-en');
      await page.click('#lang');
      await page.waitForFunction(() => document.documentElement.dir === 'rtl');
      assert.strictEqual(await text('#nav-orders'), 'الطلبات');
    });

    await step('log out: back to the login page, and the API refuses the old session', async () => {
      await page.click('#logout');
      await page.waitForSelector('#login-form');
      const st = await page.evaluate(async () => (await fetch('/api/v1/orders')).status);
      assert.strictEqual(st, 401);
      await page.click('#lang');
      await page.waitForFunction(() => document.documentElement.dir === 'ltr');
      await shot('login-en');
    });

    await step('no script error on any page', async () => {
      assert.deepStrictEqual(errors, []);
    });
  } catch (e) {
    await browser.close();
    process.exit(1);
  }
  await browser.close();
  console.log(`all ${n} steps passed`);
})();
