// The page's place lives in the URL fragment, so that a reload comes back to the same view
// (and the same terminal): #/providers, #/profiles, #/sandboxes, #/sandboxes/<id>[/tmux/<name>].
export type Route =
  | { view: 'providers' }
  | { view: 'profiles' }
  | { view: 'sandboxes' }
  | { view: 'sandbox'; id: string; tmux?: string };

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'providers') return { view: 'providers' };
  if (parts[0] === 'profiles') return { view: 'profiles' };
  if (parts[0] === 'sandboxes' && parts[1]) {
    return parts[2] === 'tmux' && parts[3]
      ? { view: 'sandbox', id: parts[1], tmux: parts[3] }
      : { view: 'sandbox', id: parts[1] };
  }
  return { view: 'sandboxes' };
}

export function routeHash(r: Route): string {
  if (r.view === 'sandbox') {
    const base = `#/sandboxes/${encodeURIComponent(r.id)}`;
    return r.tmux ? `${base}/tmux/${encodeURIComponent(r.tmux)}` : base;
  }
  return `#/${r.view}`;
}

// "#token=abc" (the link `agentpane serve` prints) -> "abc".
export function tokenFromHash(hash: string): string | null {
  const m = /^#token=([0-9A-Fa-f]+)$/.exec(hash);
  return m ? m[1] : null;
}
