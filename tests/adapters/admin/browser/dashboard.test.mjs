// The saga admin dashboard in headless Chromium: starts admin_test_server (an engine with
// sagas in many statuses), loads the dashboard, checks the list and the filters, opens a
// timeline, approves a waiting saga with a reason and checks that it moves on, and saves
// screenshots. Exits 0 when every check passes.
//
//   node dashboard.test.mjs --server <admin_test_server> [--chromium /usr/bin/chromium]
//                           [--out <dir for screenshots>]
import {spawn} from 'node:child_process';
import {mkdirSync} from 'node:fs';
import path from 'node:path';
import {chromium} from 'playwright-core';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
if (!args.server) {
  console.error('usage: node dashboard.test.mjs --server <admin_test_server> [--out dir]');
  process.exit(2);
}
const out = args.out || '.';
const executablePath = args.chromium || '/usr/bin/chromium';
mkdirSync(out, {recursive: true});

const TOKEN = 'browser-test-token';
let failures = 0;
let checks = 0;
function check(cond, what) {
  checks++;
  if (cond) console.log(`  ok   ${what}`);
  else { failures++; console.log(`  FAIL ${what}`); }
}

/** Starts the server; resolves with {proc, port} once it prints its port. */
function startServer() {
  return new Promise((resolve, reject) => {
    const proc = spawn(args.server, ['--port', '0', '--token', TOKEN], {stdio: ['ignore', 'pipe', 'pipe']});
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => reject(new Error(`no port from the server within 30 s\n${stderr.slice(-2000)}`)), 30000);
    proc.stdout.on('data', (d) => {
      stdout += d;
      const m = /port=(\d+)/.exec(stdout);
      if (m) { clearTimeout(timer); resolve({proc, port: Number(m[1]), stderr: () => stderr}); }
    });
    proc.stderr.on('data', (d) => { stderr += d; });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited with ${code}\n${stderr.slice(-2000)}`)); });
  });
}

/** The ids the saga list shows, sorted. */
const listedIds = (page) => page.$$eval('[data-testid=saga-row]', (rows) => rows.map((r) => r.dataset.id).sort());

/**
 * Waits (up to the page's default timeout) until the saga list shows exactly `ids`, in any
 * order, and records the check; when it never does, the check fails naming what was shown.
 */
async function expectList(ids, what) {
  const want = JSON.stringify([...ids].sort());
  const shown = await page.waitForFunction((w) => {
    const got = [...document.querySelectorAll('[data-testid=saga-row]')].map((r) => r.dataset.id).sort();
    return JSON.stringify(got) === w;
  }, want).then(() => null, async () => JSON.stringify(await listedIds(page)));
  check(shown === null, shown === null ? what : `${what} (the list shows ${shown})`);
}

let page = null;
const server = await startServer();
const base = `http://127.0.0.1:${server.port}`;
console.log(`admin_test_server on ${base}`);
const browser = await chromium.launch({executablePath, args: ['--no-sandbox'], headless: true});
const pageErrors = [];
try {
  const context = await browser.newContext({viewport: {width: 1440, height: 960}, deviceScaleFactor: 1});
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error' && !/401|409/.test(m.text())) pageErrors.push(m.text()); });
  page.setDefaultTimeout(15000);

  console.log('the list');
  await page.goto(`${base}/#token=${TOKEN}&operator=browser-test`);
  const rows = page.locator('[data-testid=saga-row]');
  await rows.nth(8).waitFor();
  check(await rows.count() === 9, 'nine sagas are listed');
  check(!page.url().includes('token='), 'the token left the URL');
  check(await page.evaluate(() => localStorage.getItem('saga-admin-token')) === TOKEN, 'the token is kept in localStorage');
  const row = (id) => page.locator(`[data-testid=saga-row][data-id="${id}"]`);
  check(await row('order-1002').locator('.badge').getAttribute('data-status') === 'waiting', 'order-1002 has a waiting badge');
  check(await row('order-stuck-1005').locator('.badge').innerText() === 'Compensation failed', 'order-stuck-1005 says compensation failed');
  check(await row('order-1001').locator('[role=progressbar]').getAttribute('aria-valuenow') === '100', 'a completed saga is at 100%');
  check((await page.locator('[data-testid=card-waiting] .card-value').innerText()).trim() === '2', 'the waiting card counts 2');
  await page.waitForSelector('#live.live-ok');
  check(true, 'the live indicator is on');
  const refused = await page.evaluate(() => api('/api/v1/sagas/order-1001/resume', {method: 'POST', body: {why: 'format check'}})
    .then(() => null, (e) => ({status: e.status, type: e.type, correlation: e.correlation, message: e.message})));
  check(refused?.status === 409 && refused.type === 'SAGA_FINISHED' && /^[0-9a-f-]{36}$/.test(refused.correlation || '') &&
        refused.message.length > 0, `an API error reaches the page with its type, message and correlation id (${JSON.stringify(refused)})`);

  console.log('the filters');
  // Each filter change refetches the list in the background: wait until the list shows what the
  // filter asks for (a condition), never for a moment. Counting rows is not enough: the list of
  // the previous filter may have as many.
  const ALL = ['order-1001', 'order-1002', 'order-1003', 'order-1004', 'order-stuck-1005',
               'order-1006', 'order-1007', 'order-1008', 'slow-1'];
  await page.selectOption('[data-testid=filter-status]', 'waiting');
  await expectList(['order-1002', 'order-1003'], 'status=waiting shows order-1002 and order-1003');
  await page.selectOption('[data-testid=filter-status]', '');
  await page.fill('[data-testid=filter-search]', 'stuck');
  await expectList(['order-stuck-1005'], 'searching "stuck" finds order-stuck-1005');
  await page.fill('[data-testid=filter-search]', '');
  await expectList(ALL, 'an empty search shows all nine again');
  await page.selectOption('[data-testid=filter-definition]', 'slow');
  await expectList(['slow-1'], 'definition=slow finds slow-1');
  await page.selectOption('[data-testid=filter-definition]', '');
  await expectList(ALL, 'no definition filter shows all nine again');
  await page.fill('[data-testid=filter-key]', 'campaign-7');
  await expectList(['order-1001', 'order-1004'], 'correlation key campaign-7 shows order-1001 and order-1004');
  await page.fill('[data-testid=filter-key]', '');
  await expectList(ALL, 'an empty correlation key shows all nine again');

  console.log('a timeline');
  await row('order-stuck-1005').click();
  await page.waitForSelector('[data-testid=detail-id]:text("order-stuck-1005")');
  const reserve = page.locator('[data-testid=steps] li[data-step=reserve]');
  check(await reserve.getAttribute('data-status') === 'compensation_failed', 'the reserve step shows its failed compensation');
  check((await reserve.locator('.step-error').innerText()).includes('maintenance'), 'the step shows its error');
  check(await page.locator('[data-testid=action-retry]').count() === 1, 'a retry button is offered');
  check(await page.locator('[data-testid=history] li').count() > 3, 'the history is shown');

  await row('order-1003').click();
  await page.waitForSelector('[data-testid=detail-id]:text("order-1003")');
  await page.waitForSelector('[data-testid=detail-status][data-status=waiting]');
  check(await page.locator('[data-testid=steps] li').count() === 5, 'five steps are shown');
  check(await page.locator('[data-testid=steps] li[data-step=approve]').getAttribute('data-status') === 'waiting', 'the approve step waits');
  check(await page.locator('[data-testid=history] li[data-event=saga_started]').count() === 1, 'the history starts with saga_started');
  await page.screenshot({path: path.join(out, 'dashboard.png'), fullPage: false});

  console.log('approve with a reason');
  await page.click('[data-testid=action-approve]');
  const dialog = page.locator('[data-testid=confirm-dialog]');
  await dialog.waitFor({state: 'visible'});
  await page.screenshot({path: path.join(out, 'dashboard-confirm.png')});
  await page.click('[data-testid=confirm-ok]');  // no reason yet: the dialog stays
  check(await dialog.isVisible(), 'the dialog insists on a reason');
  await page.fill('[data-testid=confirm-reason]', 'checked the order with the customer');
  await page.click('[data-testid=confirm-ok]');
  await dialog.waitFor({state: 'hidden'});
  await page.waitForSelector('[data-testid=detail-status][data-status=completed]', {timeout: 20000});
  check(true, 'order-1003 moved on to completed');
  await page.waitForFunction(() => document.querySelector('#d-data').textContent.includes('"approved_by": "browser-test"'));
  check(true, 'the approval was given by the operator browser-test');
  await page.waitForSelector('[data-testid=saga-row][data-id="order-1003"] .badge[data-status=completed]');
  check(true, 'the list shows order-1003 completed');

  console.log('pause with a reason (audited)');
  await row('order-1002').click();
  await page.waitForSelector('[data-testid=detail-id]:text("order-1002")');
  await page.click('[data-testid=action-pause]');
  await page.fill('[data-testid=confirm-reason]', 'waiting for finance');
  await page.click('[data-testid=confirm-ok]');
  await page.waitForSelector('[data-testid=detail-status][data-status=paused]');
  await page.waitForSelector('[data-testid=history] .event-audit:has-text("waiting for finance")');
  check((await page.locator('[data-testid=history] .event-audit').first().innerText()).startsWith('browser-test'),
        'the history shows who paused it and why');
  await page.screenshot({path: path.join(out, 'dashboard-after.png')});

  console.log('small screens');
  await page.setViewportSize({width: 390, height: 844});
  await page.waitForTimeout(300);
  await page.screenshot({path: path.join(out, 'dashboard-mobile.png'), fullPage: false});
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, 'no horizontal scrolling on a phone');

  console.log('a wrong token asks for a new one');
  const p2 = await context.newPage();
  await p2.goto(`${base}/#token=wrong`);
  await p2.waitForSelector('[data-testid=login-dialog][open]');
  check(true, 'the login dialog opens on 401');
  await p2.close();

  check(pageErrors.length === 0, `no JavaScript errors${pageErrors.length ? `: ${pageErrors.join(' | ')}` : ''}`);
} catch (e) {
  failures++;
  console.log(`  FAIL ${e.stack || e}`);
  try {
    const pages = browser.contexts().flatMap((c) => c.pages());
    if (pages.length) await pages[0].screenshot({path: path.join(out, 'dashboard-failure.png')});
  } catch { /* nothing more to save */ }
} finally {
  await browser.close();
  server.proc.removeAllListeners('exit');
  server.proc.kill('SIGTERM');
}
console.log(`${checks} checks, ${failures} failed; screenshots in ${path.resolve(out)}`);
process.exit(failures === 0 ? 0 : 1);
