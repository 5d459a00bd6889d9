import { vi } from 'vitest';
import { Tracker, type TrackFlowConfig, type TrackerEnv } from '../src/tracker';

/** In-memory Storage (each simulated tab gets its own sessionStorage; tabs share a localStorage). */
export class MemStorage implements Storage {
  private m = new Map<string, string>();
  get length() {
    return this.m.size;
  }
  clear() {
    this.m.clear();
  }
  getItem(k: string) {
    return this.m.has(k) ? this.m.get(k)! : null;
  }
  setItem(k: string, v: string) {
    this.m.set(k, String(v));
  }
  removeItem(k: string) {
    this.m.delete(k);
  }
  key(i: number) {
    return [...this.m.keys()][i] ?? null;
  }
  keys() {
    return [...this.m.keys()];
  }
}

export interface Call {
  url: string;
  init: RequestInit;
  body: any;
}

type Reply = number | { status: number; retryAfter?: string } | Error;

/** fetch mock: replies are consumed in order; the last one repeats. */
export function mockFetch(...replies: Reply[]) {
  const calls: Call[] = [];
  const fn = vi.fn(async (url: string, init: RequestInit) => {
    calls.push({ url, init, body: JSON.parse(String(init.body)) });
    const r = replies.length > 1 ? replies.shift()! : replies[0] ?? 200;
    if (r instanceof Error) throw r;
    const status = typeof r == 'number' ? r : r.status;
    const ra = typeof r == 'number' ? undefined : r.retryAfter;
    return { status, headers: { get: (h: string) => (h.toLowerCase() == 'retry-after' ? ra ?? null : null) } };
  });
  return { fn, calls, events: () => calls.flatMap((c) => c.body.events) };
}

export const BASE: TrackFlowConfig = { apiKey: 'key-1', endpoint: 'https://collect.example.com/' };

export function tab(
  ls: MemStorage,
  opts: Partial<TrackFlowConfig> = {},
  env: TrackerEnv = {},
  ss: MemStorage = new MemStorage(),
) {
  const f = mockFetch(200);
  const t = new Tracker(
    { ...BASE, ...opts },
    { fetch: f.fn, localStorage: ls, sessionStorage: ss, autocapture: false, random: () => 0.5, ...env },
  );
  return { t, f, ss };
}

/** Every persisted queue key of an api key: events (`e:`), dropped counts (`d:`) and the earlier whole-queue layout (`q:`). */
export const queueKeys = (ls: MemStorage, apiKey = 'key-1') => ls.keys().filter((k) => /^[qed]:/.test(k.slice(`tf:${apiKey}:`.length)) && k.startsWith(`tf:${apiKey}:`));

/** The events persisted for one tab (one key per event), oldest first. */
export const stored = (ls: MemStorage, tab: string, apiKey = 'key-1') =>
  ls
    .keys()
    .filter((k) => k.startsWith(`tf:${apiKey}:e:${tab}:`))
    .map((k) => JSON.parse(ls.getItem(k)!))
    .sort((a, b) => a.timestamp - b.timestamp || a.seq - b.seq);
