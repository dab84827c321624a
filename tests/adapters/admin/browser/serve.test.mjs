// The dashboard of `campaign_publishing serve` in headless Chromium: starts the real binary on a
// fresh store (SAGA_ADMIN_TOKEN set, port 0), checks the bearer check of the campaign routes,
// seeds the sample campaigns and starts publish runs through the API (one waiting for an
// approval), then loads the dashboard, checks the list and a timeline, approves the waiting run
// with a reason, checks that it completes, saves screenshots, and stops the server with SIGTERM.
//
//   node serve.test.mjs --server <campaign_publishing> [--chromium /usr/bin/chromium]
//                       [--out <dir for screenshots>]
import {spawn} from 'node:child_process';
import {mkdirSync, mkdtempSync, rmSync} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {chromium} from 'playwright-core';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
if (!args.server) {
  console.error('usage: node serve.test.mjs --server <campaign_publishing> [--out dir]');
  process.exit(2);
}
const out = args.out || '.';
const executablePath = args.chromium || '/usr/bin/chromium';
mkdirSync(out, {recursive: true});

const TOKEN = 'serve-browser-token';
const OPERATOR = 'browser-test';
let failures = 0;
let checks = 0;
function check(cond, what) {
  checks++;
  if (cond) console.log(`  ok   ${what}`);
  else { failures++; console.log(`  FAIL ${what}`); }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts `campaign_publishing serve`; resolves with {proc, port, output()} once it prints its URL. */
let serverProc = null;  // killed in the end whatever happened
function startServer(dir) {
  return new Promise((resolve, reject) => {
    const proc = serverProc = spawn(args.server, ['serve', '--port', '0', '--store', path.join(dir, 'c.db'),
                                     '--failure-rate', '0'],
                       {stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, SAGA_ADMIN_TOKEN: TOKEN}});
    let output = '';
    const timer = setTimeout(() => reject(new Error(`no URL from serve within 60 s\n${output.slice(-3000)}`)), 60000);
    const started = {proc, output: () => output, exited: null};
    proc.stdout.on('data', (d) => {
      output += d;
      const m = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(output);
      if (m && !started.port) { clearTimeout(timer); started.port = Number(m[1]); resolve(started); }
    });
    proc.stderr.on('data', (d) => { output += d; });
    proc.on('exit', (code, signal) => {
      started.exited = {code, signal};
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code ?? signal}\n${output.slice(-3000)}`));
    });
  });
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'cp-serve-'));
let server = null;
let browser = null;
const pageErrors = [];
try {
  server = await startServer(dir);
  const base = `http://127.0.0.1:${server.port}`;
  console.log(`campaign_publishing serve on ${base} (pid ${server.proc.pid})`);

  /** fetch with the token (unless `token` is given) and JSON in and out */
  async function call(method, p, body, token = TOKEN) {
    const headers = {'X-Saga-Operator': OPERATOR};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(base + p, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { json = null; }
    return {status: res.status, json, text, correlation: res.headers.get('X-Correlation-Id')};
  }

  console.log('the API');
  check((await call('GET', '/healthz', undefined, '')).status === 200, '/healthz answers without a token');
  check((await call('GET', '/api/v1/campaigns', undefined, '')).status === 401, 'GET /api/v1/campaigns without a token is 401');
  check((await call('GET', '/api/v1/campaigns', undefined, 'wrong')).status === 401, 'a wrong token is 401');
  check((await call('POST', '/api/v1/campaigns/c-1001/publish', {}, '')).status === 401, 'POST .../publish without a token is 401');
  check((await call('POST', '/api/v1/campaigns/c-1001/approve', {}, '')).status === 401, 'POST .../approve without a token is 401');
  check((await call('GET', '/api/v1/runs/x/progress', undefined, '')).status === 401, 'GET /api/v1/runs/.../progress without a token is 401');
  check((await call('GET', '/metrics', undefined, '')).status === 401, '/metrics without a token is 401');
  const seeded = await call('POST', '/api/v1/demo/seed', {campaigns: 3});
  check(seeded.status === 201 && seeded.json.campaigns.length === 3, 'POST /api/v1/demo/seed seeds three campaigns');
  check((await call('POST', '/api/v1/demo/seed', {})).status === 409, 'seeding twice is 409');
  const listed = await call('GET', '/api/v1/campaigns');
  check(listed.status === 200 && listed.json.items.map((c) => c.id).join() === 'c-1001,c-1002,c-1003',
        'GET /api/v1/campaigns lists c-1001, c-1002 and c-1003');
  check((await call('POST', '/api/v1/campaigns/c-9999/publish', {})).status === 404, 'an unknown campaign is 404');
  check((await call('POST', '/api/v1/campaigns/c-1001/launch', {})).status === 404, 'an unknown action is 404');
  check((await call('POST', '/api/v1/campaigns/c-1001/publish', {require_approval: 'yes'})).status === 400,
        'a non-boolean require_approval is 400');

  const waiting = await call('POST', '/api/v1/campaigns/c-1001/publish', {require_approval: true});
  check(waiting.status === 202 && waiting.json.run_id === 'publish-c-1001-1', 'publish c-1001 with approval is 202 publish-c-1001-1');
  const runId = waiting.json?.run_id || 'publish-c-1001-1';
  const locked = await call('POST', '/api/v1/campaigns/c-1001/publish', {});
  check(locked.status === 409 && locked.json.error.type === 'LOCK_HELD' && locked.json.error.correlation === locked.correlation,
        'a second publish of c-1001 is 409 LOCK_HELD with the correlation id of the X-Correlation-Id header');
  check((await call('POST', '/api/v1/campaigns/c-1002/publish', {})).status === 202, 'publish c-1002 (no approval) is 202');
  check((await call('POST', '/api/v1/campaigns/c-1003/publish', {})).status === 202, 'publish c-1003 (over its credit) is 202');

  let progress = null;
  for (const until = Date.now() + 60000; Date.now() < until; await sleep(200)) {
    progress = (await call('GET', `/api/v1/runs/${runId}/progress`)).json;
    if (progress && progress.status === 'waiting' && progress.current_steps.join() === 'approval') break;
  }
  check(progress?.status === 'waiting' && progress.current_steps.join() === 'approval',
        `${runId} waits for its approval (progress ${JSON.stringify(progress?.current_steps)})`);
  check(progress?.phase_order?.includes('feed') && progress.products.length === 6,
        'the progress has phases and the six products of c-1001');
  const c1001 = (await call('GET', '/api/v1/campaigns/c-1001')).json;
  check(c1001?.open_run === runId && c1001.latest_run_status === 'waiting', 'GET /api/v1/campaigns/c-1001 names its open run');

  console.log('the dashboard');
  browser = await chromium.launch({executablePath, args: ['--no-sandbox'], headless: true});
  const context = await browser.newContext({viewport: {width: 1440, height: 960}, deviceScaleFactor: 1});
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error' && !/401|409/.test(m.text())) pageErrors.push(m.text()); });
  page.setDefaultTimeout(20000);
  await page.goto(`${base}/#token=${TOKEN}&operator=${OPERATOR}`);
  const row = (id) => page.locator(`[data-testid=saga-row][data-id="${id}"]`);
  await row(runId).waitFor();
  await row('publish-c-1002-1').waitFor();
  await row('publish-c-1003-1').waitFor();
  check(true, 'the list shows the three publish runs');
  check(await row(runId).locator('.badge').getAttribute('data-status') === 'waiting', `${runId} has a waiting badge`);
  await page.waitForSelector('[data-testid=saga-row][data-id="publish-c-1002-1"] .badge[data-status=completed]', {timeout: 60000});
  check(true, 'publish-c-1002-1 is completed');
  await page.waitForSelector('[data-testid=saga-row][data-id="publish-c-1003-1"] .badge[data-status=compensated]', {timeout: 60000});
  check(true, 'publish-c-1003-1 (budget over credit) is compensated');
  await page.waitForSelector('#live.live-ok');

  console.log('the timeline of the waiting run');
  await row(runId).click();
  await page.waitForSelector(`[data-testid=detail-id]:text("${runId}")`);
  await page.waitForSelector('[data-testid=detail-status][data-status=waiting]');
  check(await page.locator('[data-testid=steps] li[data-step=approval]').getAttribute('data-status') === 'waiting',
        'the approval step waits');
  check(await page.locator('[data-testid=steps] li[data-step=ensure_feed]').getAttribute('data-status') === 'completed',
        'the feed step is completed');
  check(await page.locator('[data-testid=history] li[data-event=saga_started]').count() === 1, 'the history starts with saga_started');
  check(await page.locator('[data-testid=action-approve]').count() === 1, 'an approve button is offered');
  await page.screenshot({path: path.join(out, 'serve-dashboard.png')});

  console.log('approve with a reason');
  await page.click('[data-testid=action-approve]');
  const dialog = page.locator('[data-testid=confirm-dialog]');
  await dialog.waitFor({state: 'visible'});
  await page.fill('[data-testid=confirm-reason]', 'creative checked with the merchant');
  await page.click('[data-testid=confirm-ok]');
  await dialog.waitFor({state: 'hidden'});
  await page.waitForSelector('[data-testid=detail-status][data-status=completed]', {timeout: 60000});
  check(true, `${runId} moved on to completed`);
  await page.waitForFunction((op) => document.querySelector('#d-data').textContent.includes(`"approved_by": "${op}"`), OPERATOR);
  check(true, `the approval was given by ${OPERATOR}`);
  await page.waitForSelector(`[data-testid=saga-row][data-id="${runId}"] .badge[data-status=completed]`);
  check(true, `the list shows ${runId} completed`);
  await page.screenshot({path: path.join(out, 'serve-dashboard-approved.png')});

  const after = (await call('GET', '/api/v1/campaigns/c-1001')).json;
  check(after?.status === 'ACTIVE' && after.open_run === null, 'c-1001 is ACTIVE with no open run');
  const done = (await call('GET', `/api/v1/runs/${runId}/progress`)).json;
  check(done?.status === 'completed' && done.progress === 100 && Object.keys(done.ads).length === 2,
        'the progress says completed, 100%, with an ad on each of its two networks');
  check(pageErrors.length === 0, `no JavaScript errors${pageErrors.length ? `: ${pageErrors.join(' | ')}` : ''}`);

  console.log('stop');
  const exited = new Promise((resolve) => {
    if (server.exited) resolve(server.exited);
    server.proc.removeAllListeners('exit');
    server.proc.on('exit', (code, signal) => resolve({code, signal}));
  });
  server.proc.kill('SIGTERM');
  const how = await Promise.race([exited, sleep(20000).then(() => null)]);
  check(how && how.code === 0, `SIGTERM stops serve with exit 0 (${JSON.stringify(how)})`);
  if (how) server = null;
} catch (e) {
  failures++;
  console.log(`  FAIL ${e.stack || e}`);
  try {
    const pages = browser ? browser.contexts().flatMap((c) => c.pages()) : [];
    if (pages.length) await pages[0].screenshot({path: path.join(out, 'serve-dashboard-failure.png')});
  } catch { /* nothing more to save */ }
  if (server) console.log(`serve's output:\n${server.output().slice(-3000)}`);
} finally {
  if (browser) await browser.close();
  if (serverProc && serverProc.exitCode === null && serverProc.signalCode === null) {
    serverProc.removeAllListeners('exit');
    serverProc.kill('SIGKILL');
  }
  rmSync(dir, {recursive: true, force: true});
}
console.log(`${checks} checks, ${failures} failed; screenshots in ${path.resolve(out)}`);
process.exit(failures === 0 ? 0 : 1);
