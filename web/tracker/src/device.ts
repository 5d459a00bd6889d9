export interface DeviceInfo {
  deviceType: 'mobile' | 'desktop';
  os: string;
  browser: string;
}

export interface UAData {
  mobile?: boolean;
  platform?: string;
}

/**
 * The OS named in a user agent or a userAgentData platform ("macOS", "Chrome OS", ...). Order matters: iOS
 * before Mac (iOS UAs say "like Mac OS X"), Android/ChromeOS before Linux.
 */
const osOf = (s: string): string => {
  const t = (r: RegExp) => r.test(s);
  return t(/Windows/)
    ? 'Windows'
    : t(/CrOS|Chrom(e|ium) OS/)
      ? 'ChromeOS'
      : t(/iPhone|iPad|iPod|iOS/)
        ? 'iOS'
        : t(/Android/)
          ? 'Android'
          : t(/Mac|macOS/)
            ? 'Mac'
            : t(/Linux|X11/)
              ? 'Linux'
              : 'Other';
};

/** Classify a user agent. Edge/Opera/Samsung are tested before Chrome, Chrome/Firefox before Safari. */
export function detectDevice(ua: string, uaData?: UAData | null, maxTouchPoints?: number): DeviceInfo {
  ua = ua || '';
  const t = (r: RegExp) => r.test(ua);
  let os = osOf(ua);
  let mobile = t(/Mobi|Android|iPhone|iPad|iPod/);
  // iPadOS 13+ Safari pretends to be a Mac; only touch support gives it away.
  if (os == 'Mac' && (maxTouchPoints || 0) > 1) {
    os = 'iOS';
    mobile = true;
  }
  if (uaData) {
    const p = osOf(uaData.platform || '');
    if (p != 'Other') os = p;
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
