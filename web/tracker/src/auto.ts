import { init } from './api';

/**
 * <script src=".../tracker.js" data-api-key="KEY" [data-endpoint="https://worker"]
 *         [data-respect-dnt] [data-respect-gpc] [data-debug]></script>
 * The endpoint defaults to the origin the script was loaded from.
 */
export function autoInit(current: HTMLScriptElement | null): void {
  try {
    const s =
      current && current.hasAttribute('data-api-key')
        ? current
        : (document.querySelector('script[data-api-key]') as HTMLScriptElement | null);
    const key = s && s.getAttribute('data-api-key');
    if (!s || !key) return;
    const has = (a: string) => s.hasAttribute(a);
    init({
      apiKey: key,
      endpoint: s.getAttribute('data-endpoint') || new URL(s.src, location.href).origin,
      respectDoNotTrack: has('data-respect-dnt'),
      respectGlobalPrivacyControl: has('data-respect-gpc'),
      debug: has('data-debug'),
    });
  } catch (e) {
    /* never break the host page */
  }
}
