import { describe, expect, it } from 'vitest';
import { age, ApiError, decodeOutput, request, splitArgs } from './api';
import { parseRoute, routeHash, tokenFromHash } from './route';

function reply(status: number, body: string): typeof fetch {
  return (async () => new Response(body, { status })) as typeof fetch;
}

describe('request', () => {
  it('returns data of an ok envelope', async () => {
    await expect(request('GET', '/x', undefined, reply(200, '{"ok":true,"data":{"a":1}}'))).resolves.toEqual({ a: 1 });
  });
  it('turns an error envelope into an ApiError with code, message and status', async () => {
    const p = request('POST', '/x', {}, reply(409, '{"ok":false,"error":{"code":"SANDBOX_CONFIG_IN_USE","message":"in use","details":{"sandboxes":"2"}}}'));
    await expect(p).rejects.toMatchObject({ code: 'SANDBOX_CONFIG_IN_USE', message: 'in use', status: 409, details: { sandboxes: '2' } });
  });
  it('names a reply that is not JSON', async () => {
    const p = request('GET', '/x', undefined, reply(502, '<html>bad gateway</html>'));
    await expect(p).rejects.toBeInstanceOf(ApiError);
    await expect(p).rejects.toMatchObject({ code: 'BAD_RESPONSE', status: 502 });
  });
  it('names a network failure', async () => {
    const failing = (async () => {
      throw new TypeError('Failed to fetch');
    }) as typeof fetch;
    await expect(request('GET', '/x', undefined, failing)).rejects.toMatchObject({ code: 'NETWORK_ERROR' });
  });
});

describe('splitArgs', () => {
  it.each([
    ['echo hi', ['echo', 'hi']],
    ['  sh  -c  "echo a  b; exit 3"  ', ['sh', '-c', 'echo a  b; exit 3']],
    ["printf '%s\\n' x", ['printf', '%s\\n', 'x']],
    ['a\\ b c', ['a b', 'c']],
    ['echo ""', ['echo', '']],
    ['', []],
  ])('%s', (line, argv) => expect(splitArgs(line)).toEqual(argv));
  it('refuses an unclosed quote', () => expect(() => splitArgs('echo "x')).toThrow(/unclosed/));
});

describe('helpers', () => {
  it('age', () => {
    expect(age(100, 130_000)).toBe('30s');
    expect(age(0, 7_200_000)).toBe('2h');
    expect(age(0, 3 * 86_400_000)).toBe('3d');
  });
  it('decodeOutput prefers text and decodes base64', () => {
    expect(decodeOutput('t', 'eA==')).toBe('t');
    expect(decodeOutput(undefined, 'aMOpbGxv')).toBe('héllo');
  });
  it('routes round-trip', () => {
    for (const h of ['#/providers', '#/profiles', '#/sandboxes', '#/sandboxes/sb-1', '#/sandboxes/sb-1/tmux/main']) {
      expect(routeHash(parseRoute(h))).toBe(h);
    }
    expect(parseRoute('')).toEqual({ view: 'sandboxes' });
  });
  it('takes the token from the fragment only in its exact form', () => {
    expect(tokenFromHash('#token=abc123')).toBe('abc123');
    expect(tokenFromHash('#/sandboxes')).toBeNull();
    expect(tokenFromHash('#token=abc&x=1')).toBeNull();
  });
});
