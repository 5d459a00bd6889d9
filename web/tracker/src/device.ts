export interface DeviceInfo {
  deviceType: 'mobile' | 'desktop';
  os: string;
  browser: string;
}

export interface UAData {
  mobile?: boolean;
  platform?: string;
}

const PLATFORMS: Record<string, string> = {
  Windows: 'Windows',
  macOS: 'Mac',
  iOS: 'iOS',
  Android: 'Android',
  Linux: 'Linux',
  'Chrome OS': 'ChromeOS',
  ChromeOS: 'ChromeOS',
  'Chromium OS': 'ChromeOS',
};

/**
 * Classify a user agent. Order matters: iOS before Mac (iOS UAs say "like Mac OS X"),
 * Android/ChromeOS before Linux, Edge/Opera/Samsung before Chrome, Chrome/Firefox before Safari.
 */
export function detectDevice(ua: string, uaData?: UAData | null, maxTouchPoints?: number): DeviceInfo {
  ua = ua || '';
  const t = (r: RegExp) => r.test(ua);
  let os = t(/Windows/)
    ? 'Windows'
    : t(/CrOS/)
      ? 'ChromeOS'
      : t(/iPhone|iPad|iPod/)
        ? 'iOS'
        : t(/Android/)
          ? 'Android'
          : t(/Macintosh|Mac OS X/)
            ? 'Mac'
            : t(/Linux|X11/)
              ? 'Linux'
              : 'Other';
  let mobile = t(/Mobi|Android|iPhone|iPad|iPod/);
  // iPadOS 13+ Safari pretends to be a Mac; only touch support gives it away.
  if (os == 'Mac' && (maxTouchPoints || 0) > 1) {
    os = 'iOS';
    mobile = true;
  }
  if (uaData) {
    const p = uaData.platform && PLATFORMS[uaData.platform];
    if (p) os = p;
    if (uaData.mobile) mobile = true;
  }
  const browser = t(/Edg(e|A|iOS)?\//)
    ? 'Edge'
    : t(/OPR\/|Opera|OPiOS|OPT\//)
      ? 'Opera'
      : t(/SamsungBrowser/)
        ? 'Samsung Internet'
        : t(/Chrome\/|CriOS|Chromium/)
          ? 'Chrome'
          : t(/Firefox\/|FxiOS/)
            ? 'Firefox'
            : t(/Safari\//)
              ? 'Safari'
              : 'Other';
  return { deviceType: mobile ? 'mobile' : 'desktop', os, browser };
}
