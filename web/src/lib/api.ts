// The server's JSON API (docs/api.md): {"ok":true,"data":…} or {"ok":false,"error":{code,message}}.
// Every failure becomes an ApiError carrying the server's code and message, so that the page
// can show both; a network failure or a reply that is not the envelope gets a code of its own.

export class ApiError extends Error {
  constructor(
    public code: string,
    message: string,
    public status = 0,
    public details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

type Fetch = typeof fetch;

export async function request<T>(
  method: string,
  path: string,
  body?: unknown,
  fetchImpl: Fetch = fetch,
): Promise<T> {
  let res: Response;
  try {
    res = await fetchImpl(path, {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError('NETWORK_ERROR', `the server cannot be reached (${String(e)})`);
  }
  let parsed: unknown;
  const text = await res.text();
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ApiError('BAD_RESPONSE', `HTTP ${res.status}: ${text.slice(0, 200)}`, res.status);
  }
  const env = parsed as { ok?: boolean; data?: T; error?: { code?: string; message?: string; details?: Record<string, unknown> } };
  if (env.ok === true) return env.data as T;
  const err = env.error ?? {};
  throw new ApiError(err.code ?? 'BAD_RESPONSE', err.message ?? `HTTP ${res.status}`, res.status, err.details ?? {});
}

export const api = {
  get: <T>(path: string) => request<T>('GET', path),
  post: <T>(path: string, body?: unknown) => request<T>('POST', path, body ?? {}),
  put: <T>(path: string, body: unknown) => request<T>('PUT', path, body),
  patch: <T>(path: string, body: unknown) => request<T>('PATCH', path, body),
  del: <T>(path: string) => request<T>('DELETE', path),
};

// GET /api/sandbox/pool: one entry per profile that has (or had) a warm pool.
export interface WarmPool {
  profile: string;
  profileId: string;
  provider: string;
  min: number;
  max: number;
  target: number;
  warm: number;
  starting: number;
  claimed: number;
  hits: number;
  misses: number;
  available: boolean;
  lastError?: string;
}

export interface Settings {
  defaultProvider: 'docker' | 'kubernetes';
  k8sEnabled: boolean;
  limits: Limits;
  dockerVersion?: string;
}

export interface SandboxConfig {
  id: string;
  name: string;
  description: string;
  providerType: 'docker' | 'kubernetes';
  image: string;
  memoryMb: number;
  cpu: number;
  pidsLimit: number;
  timeoutMinutes: number;
  isDefault: boolean;
  kubeConfigPath: string;
  kubeContext: string;
  kubeNamespace: string;
  networkPolicyEnabled: boolean;
  allowedEgressHosts: string[];
  [k: string]: unknown;
}

export interface Sandbox {
  id: string;
  status: string;
  provider: string;
  projectId: string;
  projectPath: string;
  image: string;
  configId: string;
  createdAt: number;
  error: string;
}

export interface TmuxSession {
  name: string;
  windows: number;
  createdAt: number;
  attached: boolean;
}

export interface AuditEntry {
  id: number;
  atMs: number;
  sandboxId: string;
  actor: string;
  action: string;
  detail: unknown;
  ok: boolean;
}

export interface ExecResult {
  exitCode: number;
  stdout?: string;
  stderr?: string;
  stdoutBase64?: string;
  stderrBase64?: string;
}

export interface K8sStatus {
  connected: boolean;
  context: string;
  server: string;
  version: string;
  namespace: string;
  namespaceExists: boolean;
  pods: { running: number; total: number };
}

export interface K8sContexts {
  contexts: { name: string; cluster: string; user: string; namespace: string }[];
  current: string | null;
}

// The bounds of a profile's fields come from the server (`limits` of GET /api/settings); the
// sliders' steps are the page's own.
export interface Range {
  min: number;
  max: number;
}
export interface Limits {
  memoryMb: Range;
  cpu: Range;
  pidsLimit: Range;
  timeoutMinutes: Range;
}
export const sliderSteps = { memoryMb: 256, cpu: 0.5, pidsLimit: 32, timeoutMinutes: 1 };

// "3m", "2h", "5d" for a unix time in seconds.
export function age(unixSeconds: number, nowMs = Date.now()): string {
  const s = Math.max(0, Math.floor(nowMs / 1000 - unixSeconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

// Splits a command line into argv: whitespace separates, single and double quotes group,
// backslash escapes outside single quotes. No shell runs it: this only builds the argv list.
export function splitArgs(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let has = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote === "'") {
      if (c === "'") quote = null;
      else cur += c;
    } else if (c === '\\' && i + 1 < line.length) {
      cur += line[++i];
      has = true;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      has = true;
    } else if (/\s/.test(c)) {
      if (has || cur) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (quote) throw new Error('unclosed quote');
  if (has || cur) out.push(cur);
  return out;
}

export function decodeOutput(text: string | undefined, b64: string | undefined): string {
  if (text !== undefined) return text;
  if (b64 === undefined) return '';
  const bin = atob(b64);
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return new TextDecoder('utf-8', { fatal: false }).decode(bytes);
}

export interface CreateProgress {
  phase: string;
  message: string;
  sandboxId?: string;
  elapsedMs?: number;
}

// POST /api/sandboxes in its streamed form (Accept: application/x-ndjson): one JSON line per
// phase, heartbeats, then {"type":"result","status","ok","data"|"error"}. Resolves with the
// sandbox, or throws the result's error as an ApiError.
export async function createSandboxStreamed<T>(
  body: unknown,
  onProgress: (p: CreateProgress) => void,
  fetchImpl: Fetch = fetch,
): Promise<T> {
  let res: Response;
  try {
    res = await fetchImpl('/api/sandboxes', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/x-ndjson' },
      body: JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError('NETWORK_ERROR', `the server cannot be reached (${String(e)})`);
  }
  const type = res.headers.get('content-type') ?? '';
  if (!type.startsWith('application/x-ndjson') || !res.body) {
    // Refused before the create started (validation, auth): the plain envelope.
    const text = await res.text();
    let env: { ok?: boolean; data?: T; error?: { code?: string; message?: string; details?: Record<string, unknown> } };
    try {
      env = JSON.parse(text);
    } catch {
      throw new ApiError('BAD_RESPONSE', `HTTP ${res.status}: ${text.slice(0, 200)}`, res.status);
    }
    if (env.ok) return env.data as T;
    throw new ApiError(env.error?.code ?? 'BAD_RESPONSE', env.error?.message ?? `HTTP ${res.status}`, res.status, env.error?.details ?? {});
  }
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buf += dec.decode(value, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      const msg = JSON.parse(line) as {
        type: string;
        status?: number;
        ok?: boolean;
        data?: T;
        error?: { code?: string; message?: string; details?: Record<string, unknown> };
      } & CreateProgress;
      if (msg.type === 'progress') onProgress(msg);
      else if (msg.type === 'result') {
        if (msg.ok) return msg.data as T;
        throw new ApiError(msg.error?.code ?? 'BAD_RESPONSE', msg.error?.message ?? 'create failed', msg.status ?? 0, msg.error?.details ?? {});
      }
    }
    if (done) break;
  }
  throw new ApiError('BAD_RESPONSE', 'the create stream ended without a result');
}
