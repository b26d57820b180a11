// Browser tests of the web page: Debian's Chromium driven by playwright-core, against the real
// `agentpane serve` (started here, on a free port, with a fresh home) and the real Docker
// engine; the Kubernetes test runs when the test cluster's environment is present
// (eval "$(bash scripts/test-cluster env)"). Screenshots of each view, light and dark, go to
// docs/screenshots/ (AGENTPANE_SCREENSHOT_DIR overrides).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, mkdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const bin = process.env.AGENTPANE_BIN ?? path.join(root, 'build', 'agentpane');
const webRoot = path.join(root, 'web', 'dist');
const shotDir = process.env.AGENTPANE_SCREENSHOT_DIR ?? path.join(root, 'docs', 'screenshots');
const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const clusterKubeconfig = process.env.AGENTPANE_TEST_SA_KUBECONFIG ?? '';
const withCluster = clusterKubeconfig !== '' && existsSync(clusterKubeconfig);

let server;
let serverLog = '';
let baseUrl;
let token;
let browser;
let page;
const home = mkdtempSync(path.join(tmpdir(), 'agentpane-web-home-'));
const projects = mkdtempSync(path.join(tmpdir(), 'agentpane-web-projects-'));
const project = path.join(projects, 'demo');
mkdirSync(project);
const created = [];

async function apiCall(method, p, body) {
  const res = await fetch(baseUrl + p, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return res.json();
}

async function setTheme(theme) {
  await page.evaluate((t) => localStorage.setItem('agentpane-theme', t), theme);
}

// One screenshot per view and theme; the page is reloaded in the other theme and put back.
async function shoot(name) {
  const original = await page.evaluate(() => document.documentElement.dataset.theme);
  for (const theme of ['light', 'dark']) {
    await setTheme(theme);
    await page.reload();
    await page.waitForFunction((t) => document.documentElement.dataset.theme === t, theme);
    await page.waitForLoadState('networkidle');
    await page.screenshot({ path: path.join(shotDir, `${name}-${theme}.png`), fullPage: true });
  }
  await setTheme(original ?? 'light');
  await page.reload();
  await page.waitForLoadState('networkidle');
}

before(async () => {
  mkdirSync(shotDir, { recursive: true });
  const env = { ...process.env, AGENTPANE_HOME: home };
  delete env.ENABLE_K8S_SANDBOX;
  if (withCluster) {
    env.ENABLE_K8S_SANDBOX = 'true';
    env.KUBECONFIG = clusterKubeconfig;
  }
  server = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--home', home, '--web-root', webRoot, '--project-root', projects], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  // Ready when serve prints the page's link (after it accepts connections).
  const link = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no link printed within 60 s; server log:\n${serverLog}`)), 60_000);
    const onData = (d) => {
      serverLog += d;
      const m = /web page: (http:\/\/\S+)\/#token=([0-9a-f]+)/.exec(serverLog);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    server.stdout.on('data', onData);
    server.stderr.on('data', onData);
    server.once('exit', (code) => reject(new Error(`serve exited (${code}):\n${serverLog}`)));
  });
  baseUrl = link[1];
  token = readFileSync(path.join(home, 'token'), 'utf8').trim();
  assert.equal(link[2], token, 'the printed link carries the token');
  assert.equal(readFileSync(path.join(home, 'address'), 'utf8').trim(), baseUrl);
  browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  page = await context.newPage();
  page.setDefaultTimeout(15_000);
});

after(async () => {
  for (const id of created) await apiCall('DELETE', `/api/sandboxes/${id}`).catch(() => {});
  await browser?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  // A warm pool made the server's slot root a mount point of its own (it outlives the server).
  const slots = path.join(home, 'warm-slots', 'docker');
  if (existsSync(slots)) spawnSync('umount', ['-l', slots]);
  rmSync(home, { recursive: true, force: true });
  rmSync(projects, { recursive: true, force: true });
});

describe('web page', () => {
  test('the server serves the page with its caching rules', async () => {
    const index = await fetch(baseUrl + '/');
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type'), /^text\/html/);
    assert.equal(index.headers.get('cache-control'), 'no-cache');
    const html = await index.text();
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)[1];
    const js = await fetch(baseUrl + asset);
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type'), /^text\/javascript/);
    assert.match(js.headers.get('cache-control'), /immutable/);
    const spa = await fetch(baseUrl + '/sandboxes/anything');
    assert.equal(spa.status, 200);
    assert.match(spa.headers.get('content-type'), /^text\/html/);
    assert.equal((await fetch(baseUrl + '/assets/missing.js')).status, 404);
  });

  test('a wrong token is refused with the API message', async () => {
    await page.goto(baseUrl + '/');
    await setTheme('light');
    await page.getByLabel('Token').fill('0123456789abcdef0123456789abcdef');
    await page.getByRole('button', { name: 'Log in' }).click();
    assert.equal(await page.getByRole('alert').textContent(), 'UNAUTHORIZED: wrong token');
    await page.screenshot({ path: path.join(shotDir, 'login-light.png') });
    await setTheme('dark');
    await page.reload();
    await page.getByLabel('Token').waitFor();
    await page.screenshot({ path: path.join(shotDir, 'login-dark.png') });
    await setTheme('light');
  });

  test('log in with the link serve prints, log out, log in with the pasted token', async () => {
    await page.goto(`${baseUrl}/#token=${token}`);
    await page.getByRole('heading', { name: 'Sandboxes' }).waitFor();
    assert.equal(new URL(page.url()).hash, '#/sandboxes', 'the token leaves the address bar');
    const cookies = await page.context().cookies();
    const session = cookies.find((c) => c.name === 'agentpane_session');
    assert.ok(session?.httpOnly, 'HttpOnly session cookie');
    assert.equal(session.sameSite, 'Strict');
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByLabel('Token').waitFor();
    await page.reload();
    await page.getByLabel('Token').waitFor(); // the cookie is gone: still logged out
    await page.getByLabel('Token').fill(token);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Sandboxes' }).waitFor();
  });

  test('providers: Docker engine version, default provider persisted by the server', async () => {
    await page.goto(baseUrl + '/#/providers');
    const version = await page.getByTestId('docker-version').textContent();
    const engine = execFileSync('docker', ['version', '--format', '{{.Server.Version}}'], { encoding: 'utf8' }).trim();
    assert.equal(version, engine);
    const settings = await apiCall('GET', '/api/settings');
    assert.equal(settings.data.defaultProvider, 'docker');
    if (!withCluster) {
      assert.match(await page.getByTestId('k8s-off').textContent(), /ENABLE_K8S_SANDBOX=true/);
      assert.ok(await page.getByRole('button', { name: 'Use Kubernetes' }).isDisabled());
    }
    await shoot('providers');
  });

  test('select Kubernetes and see the test cluster\'s real version', { skip: withCluster ? false : 'no test cluster environment (AGENTPANE_TEST_SA_KUBECONFIG)' }, async () => {
    await page.goto(baseUrl + '/#/providers');
    await page.getByRole('button', { name: 'Use Kubernetes' }).click();
    await page.getByTestId('provider-kubernetes').getByText('Default').waitFor();
    const real = JSON.parse(execFileSync('kubectl', ['--kubeconfig', process.env.KUBECONFIG ?? clusterKubeconfig, 'version', '-o', 'json'], { encoding: 'utf8' })).serverVersion.gitVersion;
    await page.getByTestId('k8s-connection').filter({ hasText: 'Connected' }).waitFor();
    assert.equal(await page.getByTestId('k8s-version').textContent(), real);
    // The panel's context (preselected: the kubeconfig's current one) and namespace are saved
    // into the default profile, which the cluster routes read.
    const current = await page.getByTestId('k8s-context').inputValue();
    assert.notEqual(current, '', 'the current context is preselected');
    await page.getByRole('button', { name: 'Save to default profile' }).click();
    await page.getByText('Saved.').waitFor();
    const profiles = await apiCall('GET', '/api/sandbox-configs');
    const def = profiles.data.find((p) => p.isDefault);
    assert.equal(def.kubeContext, current);
    assert.equal(def.kubeNamespace, 'agentpane-sandboxes');
    await page.getByTestId('k8s-connection').filter({ hasText: 'Connected' }).waitFor();
    await page.reload();
    await page.getByTestId('provider-kubernetes').getByText('Default').waitFor(); // persisted
    assert.equal((await apiCall('GET', '/api/settings')).data.defaultProvider, 'kubernetes');
    await shoot('providers-kubernetes');
    await page.getByRole('button', { name: 'Use Docker' }).click();
    await page.getByTestId('provider-docker').getByText('Default').waitFor();
  });

  test('a Kubernetes profile from the dialog: cluster fields saved, a bad allowlist refused with its code', { skip: withCluster ? false : 'no test cluster environment (AGENTPANE_TEST_SA_KUBECONFIG)' }, async () => {
    await page.goto(baseUrl + '/#/profiles');
    await page.getByRole('button', { name: 'New profile' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Name').fill('web-k8s');
    await dialog.locator('select[name=providerType]').selectOption('kubernetes');
    // A user's own kubeconfig (the cluster's lives in a system directory, which the server
    // refuses as a profile's path: PATH_FORBIDDEN).
    const kubeconfig = path.join(projects, 'cluster.kubeconfig');
    copyFileSync(clusterKubeconfig, kubeconfig);
    await dialog.getByLabel('Kubeconfig path').fill(kubeconfig);
    await dialog.getByLabel('Namespace').fill('agentpane-sandboxes');
    await dialog.locator('textarea[name=egress]').fill('192.168.7.0/24\nnot a host!');
    await dialog.getByRole('button', { name: 'Save' }).click();
    const refusal = await dialog.getByRole('alert').textContent();
    assert.match(refusal, /^VALIDATION_ERROR: /);
    await dialog.locator('textarea[name=egress]').fill('192.168.7.0/24\n10.1.2.3:443');
    await dialog.getByRole('button', { name: 'Save' }).click();
    const card = page.locator('[data-testid=profile-card][data-name="web-k8s"]');
    await card.or(dialog.getByRole('alert')).first().waitFor();
    assert.equal(await dialog.isVisible() ? await dialog.getByRole('alert').textContent() : '', '');
    await card.getByText('kubernetes').waitFor();
    const saved = (await apiCall('GET', '/api/sandbox-configs')).data.find((p) => p.name === 'web-k8s');
    assert.equal(saved.providerType, 'kubernetes');
    assert.equal(saved.kubeConfigPath, kubeconfig);
    assert.equal(saved.kubeNamespace, 'agentpane-sandboxes');
    assert.equal(saved.networkPolicyEnabled, true);
    assert.deepEqual(saved.allowedEgressHosts, ['192.168.7.0/24', '10.1.2.3:443']);
    await card.getByRole('button', { name: 'Delete' }).click();
    await card.getByRole('button', { name: 'Yes, delete' }).click();
    await card.waitFor({ state: 'detached' });
  });

  test('profiles: create, edit and delete', async () => {
    await page.goto(baseUrl + '/#/profiles');
    await page.getByRole('button', { name: 'New profile' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Name').fill('web-small');
    await dialog.getByLabel('Description').fill('made by the browser test');
    await dialog.locator('input[name=memoryMb]').fill('1024');
    await dialog.getByRole('button', { name: 'Save' }).click();
    const card = page.locator('[data-testid=profile-card][data-name="web-small"]');
    await card.getByText('1024 MB').waitFor();
    await shoot('profiles');

    await card.getByRole('button', { name: 'Edit' }).click();
    await page.getByRole('dialog').locator('input[name=memoryMb]').fill('3072');
    await page.getByRole('dialog').screenshot({ path: path.join(shotDir, 'profile-dialog-light.png') });
    await page.getByRole('dialog').getByRole('button', { name: 'Save' }).click();
    await card.getByText('3072 MB').waitFor();

    await card.getByRole('button', { name: 'Delete' }).click();
    await card.getByRole('button', { name: 'Yes, delete' }).click();
    await card.waitFor({ state: 'detached' });
  });

  test('a sandbox is created and becomes running; its profile cannot be deleted (409 shown)', async () => {
    const made = await apiCall('POST', '/api/sandbox-configs', { name: 'web-used', memoryMb: 1024 });
    assert.ok(made.ok, JSON.stringify(made));
    await page.goto(baseUrl + '/#/sandboxes');
    await page.getByLabel('Project directory').fill(project);
    await page.getByLabel('Profile').selectOption({ label: 'web-used · docker' });
    await page.getByRole('button', { name: 'Create sandbox' }).click();
    const row = page.getByTestId('sandbox-row').first();
    await row.waitFor();
    const id = await row.getAttribute('data-id');
    created.push(id);
    await row.getByTestId('sandbox-status').filter({ hasText: 'running' }).waitFor({ timeout: 120_000 });
    await page.getByRole('button', { name: 'Create sandbox' }).waitFor(); // the create has answered
    // The streamed create's phases were shown as they came (Docker: image, created, started).
    const phases = await page.getByTestId('create-progress').locator('.badge').allTextContents();
    assert.ok(phases.includes('started'), `phases shown: ${phases.join(', ')}`);
    await shoot('sandboxes');

    await page.goto(baseUrl + '/#/profiles');
    const card = page.locator('[data-testid=profile-card][data-name="web-used"]');
    await card.getByRole('button', { name: 'Delete' }).click();
    await card.getByRole('button', { name: 'Yes, delete' }).click();
    const alert = await page.getByRole('alert').textContent();
    assert.match(alert, /^SANDBOX_CONFIG_IN_USE: /);
    await card.waitFor(); // still there
  });

  test('a terminal shows what is typed, and the session is there after a reload', async () => {
    const id = created[0];
    assert.ok(id, 'a sandbox from the previous test');
    await page.goto(`${baseUrl}/#/sandboxes/${id}`);
    await page.getByLabel('Session name').fill('web');
    await page.getByRole('button', { name: 'New session' }).click();
    await page.getByTestId('terminal-state').filter({ hasText: 'open' }).waitFor();
    await page.getByTestId('terminal').click();
    await page.keyboard.type('echo web-$((6*7))-ok');
    await page.keyboard.press('Enter');
    const rows = page.getByTestId('terminal').locator('.xterm-rows');
    await rows.filter({ hasText: 'web-42-ok' }).waitFor();
    await shoot('terminal');

    await page.reload();
    await page.getByTestId('tmux-session').filter({ hasText: 'web' }).waitFor();
    await page.getByTestId('terminal-state').filter({ hasText: 'open' }).waitFor();
    await rows.filter({ hasText: 'web-42-ok' }).waitFor(); // tmux redraws the pane on attach

    // A narrower window: the terminal refits and the pane is resized with it (the width a
    // command in the pane sees is the terminal's new column count).
    const wide = await page.getByTestId('terminal-size').textContent();
    await page.setViewportSize({ width: 700, height: 860 });
    await page.getByTestId('terminal-size').filter({ hasNotText: wide }).waitFor();
    const cols = (await page.getByTestId('terminal-size').textContent()).split('×')[0];
    assert.ok(Number(cols) < Number(wide.split('×')[0]), `narrower: ${wide} -> ${cols}`);
    await page.getByTestId('terminal').click();
    await page.keyboard.type("echo cols-$(stty size | cut -d' ' -f2)-end");
    await page.keyboard.press('Enter');
    await rows.filter({ hasText: `cols-${cols}-end` }).waitFor();
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  test('run a command and see stdout, stderr and the exit code', async () => {
    const id = created[0];
    await page.goto(`${baseUrl}/#/sandboxes/${id}`);
    await page.getByLabel('Command', { exact: true }).fill('sh -c "echo to-out; echo to-err >&2; exit 3"');
    await page.getByRole('button', { name: 'Run' }).click();
    assert.equal(await page.getByTestId('exit-code').textContent(), '3');
    assert.equal(await page.getByTestId('stdout').textContent(), 'to-out\n');
    assert.equal(await page.getByTestId('stderr').textContent(), 'to-err\n');
    await page.getByTestId('audit-row').filter({ hasText: 'exec' }).first().waitFor();
    await page.screenshot({ path: path.join(shotDir, 'sandbox-light.png'), fullPage: true });
    await setTheme('dark');
    await page.reload();
    await page.getByTestId('audit-row').first().waitFor();
    await page.screenshot({ path: path.join(shotDir, 'sandbox-dark.png'), fullPage: true });
    await setTheme('light');
  });

  test('phone width: the sandbox list stays usable', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(baseUrl + '/#/sandboxes');
    await page.getByTestId('sandbox-row').first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling (overflow ${overflow}px)`);
    await page.screenshot({ path: path.join(shotDir, 'sandboxes-phone-light.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  test('stop, then delete a sandbox from the list', async () => {
    const id = created[0];
    await page.goto(baseUrl + '/#/sandboxes');
    const row = page.locator(`[data-testid=sandbox-row][data-id="${id}"]`);
    await row.getByRole('button', { name: 'Stop' }).click();
    await row.getByTestId('sandbox-status').filter({ hasText: 'stopped' }).waitFor({ timeout: 60_000 });
    await row.getByRole('button', { name: 'Delete' }).click();
    await row.waitFor({ state: 'detached', timeout: 60_000 });
    const left = await apiCall('GET', `/api/sandboxes/${id}`);
    assert.equal(left.ok, false);
    assert.equal(left.error.code, 'SANDBOX_NOT_FOUND');
  });
  test('a warm pool is set from a profile card, fills, and is emptied', async () => {
    await page.goto(baseUrl + '/#/profiles');
    await page.getByRole('button', { name: 'New profile' }).click();
    await page.getByRole('dialog').getByLabel('Name').fill('web-pool');
    await page.getByRole('dialog').getByRole('button', { name: 'Save' }).click();
    const card = page.locator('[data-testid=profile-card][data-name="web-pool"]');
    await card.getByTestId('pool-status').filter({ hasText: 'none' }).waitFor();
    await card.getByLabel('Warm sandboxes').fill('1');
    await card.getByRole('button', { name: 'Set pool' }).click();
    // A real warm sandbox on the engine: the card shows it once it is ready.
    await card.getByTestId('pool-status').filter({ hasText: /^\s*1 warm · 0 starting · 0 claimed/ }).waitFor({ timeout: 90_000 });
    const pools = await apiCall('GET', '/api/sandbox/pool');
    assert.equal(pools.data.pools.find((p) => p.profile === 'web-pool')?.warm, 1);
    await card.getByLabel('Warm sandboxes').fill('0');
    await card.getByRole('button', { name: 'Set pool' }).click();
    await card.getByTestId('pool-status').filter({ hasText: 'none' }).waitFor({ timeout: 60_000 });
    await card.getByRole('button', { name: 'Delete' }).click();
    await card.getByRole('button', { name: 'Yes, delete' }).click();
    await card.waitFor({ state: 'detached' });
  });
});
