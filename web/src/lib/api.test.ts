import { describe, expect, it } from 'vitest';
import { age, ApiError, createSandboxStreamed, decodeOutput, request, splitArgs } from './api';
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

describe('createSandboxStreamed', () => {
  function streamOf(lines: string[], chunk = 7): typeof fetch {
    const text = lines.join('\n') + '\n';
    return (async () => {
      const enc = new TextEncoder().encode(text);
      const body = new ReadableStream({
        start(c) {
          for (let i = 0; i < enc.length; i += chunk) c.enqueue(enc.slice(i, i + chunk));
          c.close();
        },
      });
      return new Response(body, { status: 200, headers: { 'Content-Type': 'application/x-ndjson' } });
    }) as typeof fetch;
  }

  it('reports phases split across chunks and resolves with the sandbox', async () => {
    const phases: string[] = [];
    const r = await createSandboxStreamed(
      { projectPath: '/p' },
      (p) => phases.push(p.phase),
      streamOf([
        '{"type":"progress","phase":"image","message":"present","sandboxId":"sbx-1","elapsedMs":3}',
        '{"type":"heartbeat"}',
        '{"type":"progress","phase":"started","message":"running","sandboxId":"sbx-1","elapsedMs":400}',
        '{"type":"result","status":201,"ok":true,"data":{"id":"sbx-1","status":"running"}}',
      ]),
    );
    expect(phases).toEqual(['image', 'started']);
    expect(r).toEqual({ id: 'sbx-1', status: 'running' });
  });

  it('throws the result error with its code', async () => {
    const p = createSandboxStreamed({}, () => {}, streamOf(['{"type":"result","status":503,"ok":false,"error":{"code":"SANDBOX_CREATE_CANCELLED","message":"cancelled"}}']));
    await expect(p).rejects.toMatchObject({ code: 'SANDBOX_CREATE_CANCELLED', status: 503 });
  });

  it('reads a plain refusal', async () => {
    const p = createSandboxStreamed({}, () => {}, reply(403, '{"ok":false,"error":{"code":"PATH_FORBIDDEN","message":"outside the project roots"}}'));
    await expect(p).rejects.toMatchObject({ code: 'PATH_FORBIDDEN', status: 403 });
  });

  it('names a stream that ends without a result', async () => {
    await expect(createSandboxStreamed({}, () => {}, streamOf(['{"type":"heartbeat"}']))).rejects.toMatchObject({ code: 'BAD_RESPONSE' });
  });
});
