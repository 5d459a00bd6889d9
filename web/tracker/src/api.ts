import { Tracker, browserStore, destroyTracker, setOptOut, type TrackFlowConfig, type TrackerEnv } from './tracker';

let tracker: Tracker | null = null;
let pendingUser: string | null = null;

const warn = (message: string) => {
  try {
    console.warn('[TrackFlow] ' + message);
  } catch (e) {
    /* ignore */
  }
};

/** Start tracking. Calling it again while initialised is a no-op. */
export function init(config: TrackFlowConfig, env?: TrackerEnv): void {
  try {
    if (tracker) return warn('init() called twice; ignored');
    if (!config || !config.apiKey || !config.endpoint) return warn('init() needs apiKey and endpoint');
    if (typeof window == 'undefined' || typeof document == 'undefined') return;
    tracker = new Tracker(config, env);
    tracker._userId = pendingUser;
  } catch (e) {
    if (config && config.debug) console.log('[TrackFlow] init failed', e);
  }
}

/** Attach a user id to all subsequent events (null clears it). */
export function identify(userId: string | null): void {
  pendingUser = userId == null ? null : String(userId);
  if (tracker) tracker._userId = pendingUser;
}

export const setUserId = identify;

/** Persistently stop all tracking in this browser (localStorage) and drop queued events. */
export function optOut(): void {
  try {
    if (tracker) tracker._optOut();
    else setOptOut(true, browserStore('localStorage'));
  } catch (e) {
    /* ignore */
  }
}

/** Undo optOut(). */
export function optIn(): void {
  try {
    if (tracker) tracker._optIn();
    else setOptOut(false, browserStore('localStorage'));
  } catch (e) {
    /* ignore */
  }
}

/** Send all queued events now. Resolves when done (or when a retry has been scheduled); never rejects. */
export function flush(): Promise<void> {
  try {
    if (tracker) return tracker._flush();
  } catch (e) {
    /* ignore */
  }
  return Promise.resolve();
}

/** @internal test helper: tear down the singleton. */
export function _reset(): void {
  if (tracker) destroyTracker(tracker);
  tracker = null;
  pendingUser = null;
}

/** @internal test helper */
export function _instance(): Tracker | null {
  return tracker;
}
