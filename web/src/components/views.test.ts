import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import Profiles from './Profiles.svelte';
import Providers from './Providers.svelte';

type Handler = (init: RequestInit | undefined) => { status: number; body: unknown };

// A fetch that answers by "METHOD path" and records what it was asked.
function routes(table: Record<string, Handler>) {
  const calls: string[] = [];
  const f = vi.fn(async (path: string, init?: RequestInit) => {
    const key = `${init?.method ?? 'GET'} ${path}`;
    calls.push(key);
    const h = table[key];
    if (!h) return new Response(JSON.stringify({ ok: false, error: { code: 'NOT_FOUND', message: key } }), { status: 404 });
    const r = h(init);
    return new Response(JSON.stringify(r.body), { status: r.status });
  });
  vi.stubGlobal('fetch', f);
  return calls;
}

const profile = {
  id: 'cfg-1', name: 'small', description: '', providerType: 'docker', image: 'img', memoryMb: 1024, cpu: 1,
  pidsLimit: 256, timeoutMinutes: 60, isDefault: true, kubeConfigPath: '', kubeContext: '', kubeNamespace: '',
  networkPolicyEnabled: true, allowedEgressHosts: [],
};
const limits = {
  memoryMb: { min: 256, max: 8192 }, cpu: { min: 0.25, max: 4 },
  pidsLimit: { min: 16, max: 1024 }, timeoutMinutes: { min: 5, max: 600 },
};
const settings = (k8sEnabled: boolean) => ({
  defaultProvider: 'docker', k8sEnabled, limits,
  providers: { docker: { registered: true, reachable: true, version: '27.1.0', apiVersion: '1.46', running: 1, total: 2, warnings: [] }, kubernetes: { registered: false } },
});

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe('Profiles', () => {
  it('shows a card with the Default badge, asks before deleting, and shows a 409 refusal', async () => {
    const calls = routes({
      'GET /api/sandbox-configs': () => ({ status: 200, body: { ok: true, data: [profile] } }),
      'GET /api/settings': () => ({ status: 200, body: { ok: true, data: settings(false) } }),
      'GET /api/sandbox/pool': () => ({ status: 200, body: { ok: true, data: { pools: [] } } }),
      'DELETE /api/sandbox-configs/cfg-1': () => ({ status: 409, body: { ok: false, error: { code: 'SANDBOX_CONFIG_IN_USE', message: 'config cfg-1 is used by 1 sandbox' } } }),
    });
    render(Profiles);
    const card = await screen.findByTestId('profile-card');
    expect(within(card).getByText('Default')).toBeTruthy();
    expect(within(card).getByText('1024 MB')).toBeTruthy();
    await fireEvent.click(within(card).getByRole('button', { name: 'Delete' }));
    expect(calls.filter((c) => c.startsWith('DELETE'))).toEqual([]); // asked first
    await fireEvent.click(within(card).getByRole('button', { name: 'Yes, delete' }));
    expect((await screen.findByRole('alert')).textContent).toBe('SANDBOX_CONFIG_IN_USE: config cfg-1 is used by 1 sandbox');
    expect(screen.getByTestId('profile-card')).toBeTruthy();
  });

  it('shows the warm pool of a profile and sets its size, showing a refusal with its code', async () => {
    const pool = { profile: 'small', profileId: 'cfg-1', provider: 'docker', min: 2, max: 4, target: 2, warm: 1, starting: 1, claimed: 3, hits: 3, misses: 0, available: true };
    let disabled = false;
    const bodies: string[] = [];
    routes({
      'GET /api/sandbox-configs': () => ({ status: 200, body: { ok: true, data: [profile] } }),
      'GET /api/settings': () => ({ status: 200, body: { ok: true, data: settings(false) } }),
      'GET /api/sandbox/pool': () => ({ status: 200, body: { ok: true, data: { pools: [pool] } } }),
      'POST /api/sandbox/pool/prewarm': (init) => {
        bodies.push(String(init?.body));
        if (disabled) return { status: 409, body: { ok: false, error: { code: 'WARM_POOL_DISABLED', message: 'no warm pool here' } } };
        return { status: 200, body: { ok: true, data: { ...pool, min: 5, target: 5, max: 5 } } };
      },
    });
    render(Profiles);
    const card = await screen.findByTestId('profile-card');
    await waitFor(() => expect(within(card).getByTestId('pool-status').textContent).toMatch(/1 warm · 1 starting · 3 claimed\s+\(target 2, max 4\)/));
    const size = within(card).getByLabelText('Warm sandboxes') as HTMLInputElement;
    expect(size.value).toBe('2');
    await fireEvent.input(size, { target: { value: '5' } });
    await fireEvent.click(within(card).getByRole('button', { name: 'Set pool' }));
    await waitFor(() => expect(within(card).getByTestId('pool-status').textContent).toMatch(/target 5, max 5/));
    expect(bodies).toEqual(['{"count":5,"profile":"cfg-1"}']);
    disabled = true;
    await fireEvent.click(within(card).getByRole('button', { name: 'Set pool' }));
    expect((await screen.findByRole('alert')).textContent).toBe('WARM_POOL_DISABLED: no warm pool here');
  });

  it("holds the dialog's sliders to the limits the server gives", async () => {
    // jsdom has <dialog> without its modal API.
    HTMLDialogElement.prototype.showModal ??= function (this: HTMLDialogElement) {
      this.open = true;
    };
    routes({
      'GET /api/sandbox-configs': () => ({ status: 200, body: { ok: true, data: [profile] } }),
      'GET /api/settings': () => ({ status: 200, body: { ok: true, data: settings(false) } }),
      'GET /api/sandbox/pool': () => ({ status: 200, body: { ok: true, data: { pools: [] } } }),
    });
    render(Profiles);
    const card = await screen.findByTestId('profile-card');
    const edit = within(card).getByRole('button', { name: 'Edit' }) as HTMLButtonElement;
    await waitFor(() => expect(edit.disabled).toBe(false));
    await fireEvent.click(edit);
    for (const [name, range] of Object.entries(limits)) {
      const input = document.querySelector(`input[name="${name}"]`) as HTMLInputElement;
      expect(input, name).toBeTruthy();
      expect([Number(input.min), Number(input.max)], name).toEqual([range.min, range.max]);
    }
  });
});

describe('Providers', () => {
  it('shows the Docker engine and says how to turn Kubernetes on while it is off', async () => {
    const calls = routes({
      'GET /api/settings': () => ({ status: 200, body: { ok: true, data: settings(false) } }),
      'GET /api/sandbox-configs': () => ({ status: 200, body: { ok: true, data: [profile] } }),
    });
    render(Providers);
    expect((await screen.findByTestId('docker-version')).textContent).toBe('27.1.0');
    expect(screen.getByTestId('k8s-off').textContent).toMatch(/ENABLE_K8S_SANDBOX=true/);
    expect((screen.getByRole('button', { name: 'Use Kubernetes' }) as HTMLButtonElement).disabled).toBe(true);
    expect(screen.queryByTestId('k8s-panel')).toBeNull();
    expect(calls.some((c) => c.includes('/api/sandbox/k8s/'))).toBe(false); // no cluster calls while off
  });

  it('shows the cluster status and the API error of a failed status call', async () => {
    routes({
      'GET /api/settings': () => ({ status: 200, body: { ok: true, data: settings(true) } }),
      'GET /api/sandbox-configs': () => ({ status: 200, body: { ok: true, data: [profile] } }),
      'GET /api/sandbox/k8s/contexts': () => ({ status: 200, body: { ok: true, data: { contexts: [{ name: 'kind-a', cluster: 'a', user: 'u', namespace: '' }], current: 'kind-a' } } }),
      'GET /api/sandbox/k8s/status': () => ({ status: 502, body: { ok: false, error: { code: 'K8S_CONNECTION_FAILED', message: 'connection refused' } } }),
    });
    render(Providers);
    expect((await screen.findByTestId('k8s-connection')).textContent).toBe('Disconnected');
    expect((await screen.findByRole('alert')).textContent).toBe('K8S_CONNECTION_FAILED: connection refused');
    const select = screen.getByTestId('k8s-context') as HTMLSelectElement;
    await vi.waitFor(() => expect(select.value).toBe('kind-a')); // the current context preselected
  });
});
