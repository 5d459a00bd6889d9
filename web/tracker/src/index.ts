// ESM entry: named exports plus a default `TrackFlow` object. No script-tag auto-init here.
import { init, identify, setUserId, optOut, optIn, flush } from './api';

export { init, identify, setUserId, optOut, optIn, flush };
export type { TrackFlowConfig, TrackEvent } from './tracker';
export type { DeviceInfo } from './device';

const TrackFlow = { init, identify, setUserId, optOut, optIn, flush };
export default TrackFlow;
