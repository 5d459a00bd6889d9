// IIFE entry (dist/trackflow.min.js): defines global `TrackFlow` and auto-inits from the script tag.
import { init, identify, setUserId, optOut, optIn, flush } from './api';
import { autoInit } from './auto';

const win: any = typeof window != 'undefined' ? window : null;
// Loading the script twice must not create a second tracker.
if (win && !(win.TrackFlow && win.TrackFlow.init)) {
  win.TrackFlow = { init, identify, setUserId, optOut, optIn, flush };
  autoInit(document.currentScript as HTMLScriptElement | null);
}
