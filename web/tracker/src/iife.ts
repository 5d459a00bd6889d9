// IIFE entry (dist/trackflow.min.js): defines global `TrackFlow` and auto-inits from the script tag.
import { init, identify, setUserId, optOut, optIn, flush } from './api';
import { autoInit } from './auto';

const w: any = typeof window != 'undefined' ? window : null;
// Loading the script twice must not create a second tracker.
if (w && !(w.TrackFlow && w.TrackFlow.init)) {
  w.TrackFlow = { init, identify, setUserId, optOut, optIn, flush };
  autoInit(document.currentScript as HTMLScriptElement | null);
}
