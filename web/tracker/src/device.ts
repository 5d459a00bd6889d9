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
const osNamedIn = (text: string): string => {
  const mentions = (pattern: RegExp) => pattern.test(text);
  return mentions(/Windows/)
    ? 'Windows'
    : mentions(/CrOS|Chrom(e|ium) OS/)
      ? 'ChromeOS'
      : mentions(/iPhone|iPad|iPod|iOS/)
        ? 'iOS'
        : mentions(/Android/)
          ? 'Android'
          : mentions(/Mac|macOS/)
            ? 'Mac'
            : mentions(/Linux|X11/)
              ? 'Linux'
              : 'Other';
};

/** Classify a user agent. Edge/Opera/Samsung are tested before Chrome, Chrome/Firefox before Safari. */
export function detectDevice(userAgent: string, uaData?: UAData | null, maxTouchPoints?: number): DeviceInfo {
  userAgent = userAgent || '';
  const mentions = (pattern: RegExp) => pattern.test(userAgent);
  let os = osNamedIn(userAgent);
  let mobile = mentions(/Mobi|Android|iPhone|iPad|iPod/);
  // iPadOS 13+ Safari pretends to be a Mac; only touch support gives it away.
  if (os == 'Mac' && (maxTouchPoints || 0) > 1) {
    os = 'iOS';
    mobile = true;
  }
  if (uaData) {
    const platformOs = osNamedIn(uaData.platform || '');
    if (platformOs != 'Other') os = platformOs;
    if (uaData.mobile) mobile = true;
  }
  const browser = mentions(/Edg(e|A|iOS)?\//)
    ? 'Edge'
    : mentions(/OPR\/|Opera|OPiOS|OPT\//)
      ? 'Opera'
      : mentions(/SamsungBrowser/)
        ? 'Samsung Internet'
        : mentions(/Chrome\/|CriOS|Chromium/)
          ? 'Chrome'
          : mentions(/Firefox\/|FxiOS/)
            ? 'Firefox'
            : mentions(/Safari\//)
              ? 'Safari'
              : 'Other';
  return { deviceType: mobile ? 'mobile' : 'desktop', os, browser };
}
