// The API described, tried in a real browser: Debian's Chromium, headless, driven by
// playwright-core (tests/browser/install.sh puts both in place; tests/browser/run.sh
// runs this against a fresh local stack).
//
//   RUSHCART_API=http://127.0.0.1:3000 node tests/browser/docs.spec.mjs
//
// Steps: open /docs and wait for Swagger UI to render; every operation of /openapi.json
// is listed (one block per operation and tag, as Swagger UI groups them); take a token
// for user 1 from the local issuer (POST /_local/token); "Authorize" with it; on
// get-balance "Try it out" for userId 1, "Execute", and the page shows 200 with that
// user's balance. Then a screenshot.
//
// Environment:
//   RUSHCART_API         base URL of the API (default http://127.0.0.1:3000)
//   RUSHCART_SCREENSHOT  where the screenshot goes (default .local/browser/swagger-ui.png)
//   CHROMIUM             the browser (default /usr/bin/chromium)
//   STEP_TIMEOUT_MS      the bound on each step (default 30000)
//
// Exit status 0 when every step passed; 1 with the failing step named otherwise (and a
// full-page screenshot of the moment, next to RUSHCART_SCREENSHOT, ending -failure.png).

import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(path.join(ROOT, '.local/browser/'));
let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch (err) {
  console.error('playwright-core is not installed in .local/browser: run tests/browser/install.sh');
  process.exit(1);
}

const API = (process.env.RUSHCART_API || 'http://127.0.0.1:3000').replace(/\/+$/, '');
const SCREENSHOT = path.resolve(process.env.RUSHCART_SCREENSHOT || path.join(ROOT, '.local/browser/swagger-ui.png'));
const FAILURE_SHOT = SCREENSHOT.replace(/(\.png)?$/, '-failure.png');
const EXECUTABLE = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_TIMEOUT = Number(process.env.STEP_TIMEOUT_MS || 30000);
const USER_ID = 1;
const OPERATION = 'get-balance';
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

const started = Date.now();
const log = (msg) => console.log(`[browser ${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
const diagnostics = []; // what the page said along the way, printed on failure

class StepFailure extends Error {}

/** Runs one named step, bounded by STEP_TIMEOUT; a failure carries the step's name. */
async function step(name, fn) {
  log(`… ${name}`);
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no result within ${STEP_TIMEOUT / 1000} s`)), STEP_TIMEOUT);
  });
  try {
    const result = await Promise.race([fn(), timeout]);
    log(`ok ${name}`);
    return result;
  } catch (err) {
    throw new StepFailure(`step "${name}" failed: ${err.message}`);
  } finally {
    clearTimeout(timer);
  }
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** Polls `probe` until it returns a truthy value or the step's time runs out. */
async function until(probe, describe) {
  const deadline = Date.now() + STEP_TIMEOUT - 1000;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(await describe());
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function fetchJson(url, init) {
  const res = await fetch(url, init);
  const text = await res.text();
  check(res.ok, `${init?.method || 'GET'} ${url} answered ${res.status}: ${text.slice(0, 300)}`);
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${url} did not answer JSON: ${text.slice(0, 300)}`);
  }
}

/** The blocks Swagger UI should show: one per operation and tag ("default" if none). */
function expectedBlocks(doc) {
  const blocks = [];
  for (const [route, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tags = op.tags && op.tags.length ? op.tags : ['default'];
      for (const tag of tags) {
        blocks.push({
          label: `${method.toUpperCase()} ${route}`,
          // Swagger UI's deep-link id (deepLinking is on in /docs).
          id: op.operationId ? `operations-${tag.replace(/\s/g, '_')}-${op.operationId.replace(/\s/g, '_')}` : null,
          operationId: op.operationId,
        });
      }
    }
  }
  return blocks;
}

let context;
let page;
let userDataDir;
let status = 0;
try {
  const doc = await step(`fetch ${API}/openapi.json`, async () => {
    const doc = await fetchJson(`${API}/openapi.json`);
    check(typeof doc.openapi === 'string', 'the document has no "openapi" version field');
    return doc;
  });
  const blocks = expectedBlocks(doc);
  log(`the document has ${blocks.length} operation blocks (OpenAPI ${doc.openapi})`);
  const target = blocks.find((b) => b.operationId === OPERATION);
  check(target && target.id, `the document has no operation "${OPERATION}"`);

  await step(`start ${EXECUTABLE} (headless)`, async () => {
    check(fs.existsSync(EXECUTABLE), `${EXECUTABLE} is missing: run tests/browser/install.sh`);
    userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rushcart-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: EXECUTABLE,
      headless: true,
      // This machine's network is closed: keep Chromium from calling home.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1280, height: 900 },
      deviceScaleFactor: 1,
    });
    context.setDefaultTimeout(STEP_TIMEOUT);
    page = context.pages()[0] || (await context.newPage());
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') diagnostics.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => diagnostics.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => diagnostics.push(`request failed: ${r.method()} ${r.url()} (${r.failure()?.errorText})`));
    page.on('response', (r) => {
      if (r.status() >= 400) diagnostics.push(`response ${r.status()}: ${r.request().method()} ${r.url()}`);
    });
  });

  await step('open /docs and wait for Swagger UI to render the document', async () => {
    const res = await page.goto(`${API}/docs`);
    check(res && res.ok(), `GET /docs answered ${res && res.status()}`);
    await page.locator('.swagger-ui .info .title').waitFor();
    await page.locator('.swagger-ui .opblock').first().waitFor();
    const title = (await page.locator('.swagger-ui .info .title').innerText()).trim();
    log(`Swagger UI shows "${title.split('\n')[0]}"`);
    const errors = page.locator('.swagger-ui .errors-wrapper');
    if (await errors.count()) throw new Error(`Swagger UI reports errors: ${(await errors.innerText()).slice(0, 500)}`);
  });

  await step(`the page lists every operation (${blocks.length})`, async () => {
    const shown = await until(
      async () => {
        const ids = await page.locator('.swagger-ui .opblock').evaluateAll((els) => els.map((e) => e.id));
        return ids.length === blocks.length ? ids : null;
      },
      async () => {
        const ids = await page.locator('.swagger-ui .opblock').evaluateAll((els) => els.map((e) => e.id));
        const missing = blocks.filter((b) => b.id && !ids.includes(b.id)).map((b) => `${b.label} (${b.id})`);
        const extra = ids.filter((id) => !blocks.some((b) => b.id === id));
        return `the page shows ${ids.length} operations, /openapi.json has ${blocks.length}` +
          (missing.length ? `; missing: ${missing.join(', ')}` : '') +
          (extra.length ? `; not in the document: ${extra.join(', ')}` : '');
      },
    );
    const missing = blocks.filter((b) => b.id && !shown.includes(b.id));
    check(!missing.length, `not shown: ${missing.map((b) => `${b.label} (${b.id})`).join(', ')}`);
  });

  const token = await step(`take a token for user ${USER_ID} from POST /_local/token`, async () => {
    const body = await fetchJson(`${API}/_local/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ userId: USER_ID }),
    });
    check(typeof body.token === 'string' && body.token.split('.').length === 3, 'the answer carries no JWT in "token"');
    return body.token;
  });

  await step('"Authorize" with the token', async () => {
    await page.locator('.swagger-ui .auth-wrapper button.authorize').click();
    const dialog = page.locator('.swagger-ui .dialog-ux');
    await dialog.waitFor();
    await dialog.locator('#auth-bearer-value').fill(token);
    await dialog.locator('button.modal-btn.authorize').click();
    // Once applied, the dialog offers "Logout" (aria-label "Remove authorization").
    await dialog.getByRole('button', { name: 'Remove authorization' }).waitFor();
    await dialog.locator('button.btn-done').click();
    await dialog.waitFor({ state: 'detached' });
    await page.locator('.swagger-ui .auth-wrapper button.authorize.locked').waitFor();
  });

  const op = page.locator(`#${target.id}`);
  await step(`expand ${target.label} and "Try it out"`, async () => {
    await op.locator('.opblock-summary-control').click();
    await op.locator('button.try-out__btn').click();
    await op.locator('tr[data-param-name="userId"] input').fill(String(USER_ID));
  });

  await step(`"Execute" for userId ${USER_ID}: the page shows 200 and the balance`, async () => {
    await op.locator('button.execute').click();
    const response = op.locator('.live-responses-table tbody tr.response').first();
    await response.waitFor();
    const code = (await response.locator('.response-col_status').innerText()).trim();
    const body = await response.locator('.response-col_description .highlight-code pre').innerText().catch(() => '');
    check(code === '200', `the page shows response code ${code || '(none)'}, not 200; body: ${body.slice(0, 300)}`);
    check(body.includes('"balance"'), `the response body shows no "balance": ${body.slice(0, 300)}`);
    check(new RegExp(`"userId"\\s*:\\s*${USER_ID}\\b`).test(body), `the response body shows no "userId": ${USER_ID}: ${body.slice(0, 300)}`);
    const curl = await op.locator('.curl-command').innerText();
    check(/Authorization: Bearer /.test(curl), 'the request Swagger UI sent carried no bearer token');
    log(`response ${code}: ${body.replace(/\s+/g, ' ').trim()}`);
  });

  await step(`screenshot → ${path.relative(process.cwd(), SCREENSHOT) || SCREENSHOT}`, async () => {
    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    // The picture: the title, every operation, and get-balance tried out down to its
    // server response. Left out to keep it readable (and the file small): the
    // operation's documented responses (the examples under "Responses") and the Schemas
    // section; both are hidden only now, after every check above has passed.
    await page.addStyleTag({
      content: `
        #${target.id} .responses-wrapper .responses-inner > div > h4,
        #${target.id} .responses-wrapper table.responses-table:not(.live-responses-table),
        .swagger-ui section.models { display: none !important; }`,
    });
    const last = page.locator('.swagger-ui .opblock-tag-section').last();
    const box = await last.boundingBox();
    check(box, 'the operation list has no size');
    const height = Math.ceil(box.y + box.height + 24 + (await page.evaluate(() => window.scrollY)));
    await page.screenshot({ path: SCREENSHOT, fullPage: true, clip: { x: 0, y: 0, width: 1280, height } });
    log(`saved ${SCREENSHOT} (${fs.statSync(SCREENSHOT).size} bytes, 1280×${height})`);
  });

  log('PASS: /docs lists every operation, and get-balance tried out with a token shows 200 with the balance');
} catch (err) {
  status = 1;
  console.error(`\n[browser] FAIL: ${err instanceof StepFailure ? err.message : err.stack || err}`);
  if (diagnostics.length) console.error(`[browser] the page along the way:\n  ${diagnostics.slice(-20).join('\n  ')}`);
  if (page) {
    try {
      fs.mkdirSync(path.dirname(FAILURE_SHOT), { recursive: true });
      await page.screenshot({ path: FAILURE_SHOT, fullPage: true, timeout: 10000 });
      console.error(`[browser] the page at that moment: ${FAILURE_SHOT}`);
    } catch (e) {
      console.error(`[browser] no screenshot of the failure: ${e.message}`);
    }
  }
} finally {
  if (context) await context.close().catch(() => {});
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(status);
