import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, render } from '@testing-library/svelte';

// xterm.js needs a real canvas and layout: a stand-in that keeps a size and its listeners.
const terms: FakeTerminal[] = [];
class FakeTerminal {
  rows = 24;
  cols = 80;
  resizeListeners: ((s: { rows: number; cols: number }) => void)[] = [];
  constructor() {
    terms.push(this);
  }
  loadAddon(a: { term?: FakeTerminal }) {
    a.term = this;
  }
  open() {}
  focus() {}
  write() {}
  dispose() {}
  onData() {
    return { dispose() {} };
  }
  onResize(f: (s: { rows: number; cols: number }) => void) {
    this.resizeListeners.push(f);
    return { dispose() {} };
  }
  resize(cols: number, rows: number) {
    if (cols === this.cols && rows === this.rows) return;
    this.cols = cols;
    this.rows = rows;
    for (const f of this.resizeListeners) f({ rows, cols });
  }
}
let fitTo = { cols: 100, rows: 30 };
vi.mock('@xterm/xterm', () => ({ Terminal: FakeTerminal }));
vi.mock('@xterm/addon-fit', () => ({
  FitAddon: class {
    term?: FakeTerminal;
    fit() {
      this.term?.resize(fitTo.cols, fitTo.rows);
    }
  },
}));

class FakeSocket {
  static OPEN = 1;
  static last: FakeSocket;
  readyState = 0;
  sent: unknown[] = [];
  binaryType = '';
  onopen?: () => void;
  onmessage?: (e: { data: unknown }) => void;
  onclose?: (e: { code: number; reason: string }) => void;
  constructor(public url: string) {
    FakeSocket.last = this;
  }
  send(d: unknown) {
    this.sent.push(d);
  }
  close() {}
}
let observed: (() => void) | undefined;
class FakeObserver {
  constructor(cb: () => void) {
    observed = cb;
  }
  observe() {}
  disconnect() {}
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

describe('Terminal', () => {
  it('opens with its fitted size and control messages, and sends a resize when its panel changes', async () => {
    vi.useFakeTimers();
    vi.stubGlobal('WebSocket', FakeSocket);
    vi.stubGlobal('ResizeObserver', FakeObserver);
    const { default: Terminal } = await import('./Terminal.svelte');
    fitTo = { cols: 100, rows: 30 };
    render(Terminal, { sandboxId: 'sbx-1', session: 'main' });
    const ws = FakeSocket.last;
    expect(ws.url).toMatch(/\/api\/sandboxes\/sbx-1\/tmux\/main\/attach\?rows=30&cols=100&control=1$/);
    ws.readyState = 1;
    ws.onopen?.();
    // The panel narrows: one refit after the debounce, one resize message.
    fitTo = { cols: 72, rows: 30 };
    observed?.();
    observed?.();
    expect(ws.sent).toEqual([]);
    vi.advanceTimersByTime(150);
    expect(ws.sent).toEqual([JSON.stringify({ type: 'resize', rows: 30, cols: 72 })]);
    // Unchanged size: nothing more.
    observed?.();
    vi.advanceTimersByTime(150);
    expect(ws.sent.length).toBe(1);
    expect(terms.at(-1)?.cols).toBe(72);
  });
});
