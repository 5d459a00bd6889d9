import { describe, expect, it } from 'vitest';
import { detectDevice } from '../src/device';

// Real user-agent strings as sent by the respective browsers.
const TABLE: Array<[string, string, string, string, 'mobile' | 'desktop']> = [
  ['Chrome / Windows', 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36', 'Windows', 'Chrome', 'desktop'],
  ['Safari / iPhone', 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1', 'iOS', 'Safari', 'mobile'],
  ['Samsung Internet / Android', 'Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36', 'Android', 'Samsung Internet', 'mobile'],
  ['Firefox / Linux', 'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0', 'Linux', 'Firefox', 'desktop'],
  ['Firefox / Ubuntu', 'Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0', 'Linux', 'Firefox', 'desktop'],
  ['Edge / Windows', 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51', 'Windows', 'Edge', 'desktop'],
  ['Safari / Mac', 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15', 'Mac', 'Safari', 'desktop'],
  ['Opera / Windows', 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36 OPR/109.0.0.0', 'Windows', 'Opera', 'desktop'],
  ['Opera / Android', 'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36 OPR/81.1.4292.78446', 'Android', 'Opera', 'mobile'],
  ['Safari / iPad', 'Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1', 'iOS', 'Safari', 'mobile'],
  ['Chrome / ChromeOS', 'Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36', 'ChromeOS', 'Chrome', 'desktop'],
  ['Chrome / Android', 'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36', 'Android', 'Chrome', 'mobile'],
  ['Firefox / Android', 'Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0', 'Android', 'Firefox', 'mobile'],
  ['Chrome / Mac', 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36', 'Mac', 'Chrome', 'desktop'],
  ['Chrome / iPhone (CriOS)', 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1', 'iOS', 'Chrome', 'mobile'],
  ['Firefox / iPhone (FxiOS)', 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/125.0 Mobile/15E148 Safari/605.1.15', 'iOS', 'Firefox', 'mobile'],
  ['Edge / Android (EdgA)', 'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36 EdgA/124.0.2478.64', 'Android', 'Edge', 'mobile'],
  ['Android tablet Chrome', 'Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36', 'Android', 'Chrome', 'mobile'],
  ['HeadlessChrome / Linux', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.224 Safari/537.36', 'Linux', 'Chrome', 'desktop'],
  ['unknown', 'curl/8.5.0', 'Other', 'Other', 'desktop'],
];

describe('detectDevice', () => {
  it.each(TABLE)('%s', (_name, ua, os, browser, deviceType) => {
    expect(detectDevice(ua)).toEqual({ os, browser, deviceType });
  });

  it('treats iPadOS desktop-mode Safari (Mac UA + touch) as iOS mobile', () => {
    const ua = TABLE[6][1];
    expect(detectDevice(ua, null, 5)).toEqual({ os: 'iOS', browser: 'Safari', deviceType: 'mobile' });
    expect(detectDevice(ua, null, 0).os).toBe('Mac');
  });

  it('prefers userAgentData platform / mobile when present', () => {
    const reduced = 'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';
    expect(detectDevice(reduced, { platform: 'Android', mobile: false })).toEqual({ os: 'Android', browser: 'Chrome', deviceType: 'mobile' });
    expect(detectDevice(TABLE[13][1], { platform: 'macOS', mobile: false })).toMatchObject({ os: 'Mac', deviceType: 'desktop' });
    expect(detectDevice('Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0.0.0 Safari/537.36', { platform: 'Chrome OS' }).os).toBe('ChromeOS');
    expect(detectDevice(TABLE[0][1], { platform: 'Windows', mobile: true }).deviceType).toBe('mobile');
  });
});
