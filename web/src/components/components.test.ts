import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen } from '@testing-library/svelte';
import ErrorBox from './ErrorBox.svelte';
import Login from './Login.svelte';
import RunCommand from './RunCommand.svelte';
import { ApiError } from '../lib/api';

function json(status: number, body: unknown) {
  return new Response(JSON.stringify(body), { status });
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe('ErrorBox', () => {
  it('shows the code and the message', () => {
    render(ErrorBox, { error: new ApiError('SANDBOX_CONFIG_IN_USE', 'config is used by 1 sandbox', 409) });
    expect(screen.getByRole('alert').textContent).toBe('SANDBOX_CONFIG_IN_USE: config is used by 1 sandbox');
  });
});

describe('Login', () => {
  it('sends the token and reports success', async () => {
    const fetchMock = vi.fn(async () => json(200, { ok: true, data: { expiresInSeconds: 43200 } }));
    vi.stubGlobal('fetch', fetchMock);
    const onLogin = vi.fn();
    render(Login, { onLogin });
    await fireEvent.input(screen.getByLabelText('Token'), { target: { value: ' abc ' } });
    await fireEvent.click(screen.getByRole('button', { name: 'Log in' }));
    await vi.waitFor(() => expect(onLogin).toHaveBeenCalledOnce());
    expect(fetchMock).toHaveBeenCalledWith('/api/session', expect.objectContaining({ method: 'POST', body: '{"token":"abc"}' }));
  });
  it('shows the API refusal of a wrong token', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => json(401, { ok: false, error: { code: 'UNAUTHORIZED', message: 'wrong token' } })));
    const onLogin = vi.fn();
    render(Login, { onLogin });
    await fireEvent.input(screen.getByLabelText('Token'), { target: { value: 'nope' } });
    await fireEvent.click(screen.getByRole('button', { name: 'Log in' }));
    expect((await screen.findByRole('alert')).textContent).toBe('UNAUTHORIZED: wrong token');
    expect(onLogin).not.toHaveBeenCalled();
  });
});

describe('RunCommand', () => {
  it('sends argv without a shell and shows exit code, stdout and stderr', async () => {
    const fetchMock = vi.fn(async () => json(200, { ok: true, data: { exitCode: 3, stdout: 'out\n', stderr: 'err\n' } }));
    vi.stubGlobal('fetch', fetchMock);
    render(RunCommand, { sandboxId: 'sb-1' });
    await fireEvent.input(screen.getByLabelText('Command'), { target: { value: 'sh -c "echo out; exit 3"' } });
    await fireEvent.click(screen.getByRole('button', { name: 'Run' }));
    expect((await screen.findByTestId('exit-code')).textContent).toBe('3');
    expect(screen.getByTestId('stdout').textContent).toBe('out\n');
    expect(screen.getByTestId('stderr').textContent).toBe('err\n');
    const [, init] = fetchMock.mock.calls[0] as unknown as [string, RequestInit];
    expect(JSON.parse(init.body as string)).toEqual({ argv: ['sh', '-c', 'echo out; exit 3'], timeoutSeconds: 300 });
  });
  it('shows an exec error with its code', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => json(409, { ok: false, error: { code: 'SANDBOX_NOT_RUNNING', message: 'sandbox is stopped' } })));
    render(RunCommand, { sandboxId: 'sb-1' });
    await fireEvent.input(screen.getByLabelText('Command'), { target: { value: 'true' } });
    await fireEvent.click(screen.getByRole('button', { name: 'Run' }));
    expect((await screen.findByRole('alert')).textContent).toBe('SANDBOX_NOT_RUNNING: sandbox is stopped');
  });
});
