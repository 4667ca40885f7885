// Drives the gateway's status page in a real browser (Debian's Chromium through
// playwright-core): it loads the page, sends traces with the bridge's own loadgen,
// watches the numbers and the sparkline change without a reload, uses the lookup box
// for a trace id and a transaction id, and saves a screenshot.
// usage: node check.js ADMIN_URL BRIDGE_BIN OTLP_GRPC_URL SCREENSHOT_PATH
'use strict';
const { chromium } = require('playwright-core');
const { spawn } = require('child_process');

const [admin, bin, grpc, shot] = process.argv.slice(2);

async function waitFor(what, fn, ms) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last.ok) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}: last saw ${JSON.stringify(last)}`);
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const result = {};
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(`${admin}/`);
    // A mark that a reload would erase.
    await page.evaluate(() => { window.__loadedOnce = 1; });
    const accepted = () => page.locator('#rx-otlp_grpc td.accepted').innerText();
    const points = () => page.locator('#rx-otlp_grpc svg polyline').getAttribute('points')
      .catch(() => null);
    result.acceptedBefore = await accepted();

    // 20 s of traffic: long enough for several samples of the page's history.
    const load = spawn(bin, ['loadgen', '--endpoint', grpc, '--rate', '500', '--batch', '50',
      '--duration', '20s', '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const loadDone = new Promise((resolve) => load.on('exit', resolve));

    await waitFor('the accepted count to change', async () => {
      const a = await accepted();
      return { ok: a !== result.acceptedBefore && Number(a) > 0, accepted: a };
    }, 15000);
    // A drawn rate: some point of the sparkline above its baseline (y = 21).
    const spark = await waitFor('a sparkline with traffic', async () => {
      const p = await points();
      const ys = (p || '').split(' ').filter(Boolean).map((xy) => Number(xy.split(',')[1]));
      return { ok: ys.length >= 2 && ys.some((y) => y < 20), points: p };
    }, 25000);
    result.sparkline = spark.points;
    const sentText = await page.locator('#ex-sink td.sent').innerText();
    if (!(Number(sentText) > 0)) throw new Error(`exporter sent count did not move: ${sentText}`);
    result.exporterSent = sentText;
    result.reloaded = (await page.evaluate(() => window.__loadedOnce)) !== 1;
    if (result.reloaded) throw new Error('the page reloaded');

    // The lookup box, both ways (ids.md section 2's examples).
    await page.fill('#q', '0af7651916cd43dd8448eb211c80319c');
    await page.click('#lookup button');
    await page.waitForSelector('#lookup-txid');
    result.txid = await page.locator('#lookup-txid').innerText();
    result.zipkinLink = await page.locator('#lookup-result a').nth(1).getAttribute('href');
    await page.fill('#q', 'agentA^1700000000000^42');
    await page.click('#lookup button');
    await waitFor('the second answer', async () => {
      const t = await page.locator('#lookup-trace').innerText();
      return { ok: t === 'd753c5cba22eb84c93f5d8478fd545f2', trace: t };
    }, 5000);
    result.traceOfTxid = await page.locator('#lookup-trace').innerText();
    await page.fill('#q', '<img src=x onerror=alert(1)>');
    await page.click('#lookup button');
    await page.waitForSelector('#lookup-error');
    result.badInput = await page.locator('#lookup-error').innerText();
    result.injected = await page.locator('#answer img').count();

    await page.screenshot({ path: shot, fullPage: true });
    await loadDone;
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(result) + '\n');
})().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
