import { init } from './api';

/**
 * <script src=".../tracker.js" data-api-key="KEY" [data-endpoint="https://worker"]
 *         [data-respect-dnt] [data-respect-gpc] [data-debug]></script>
 * The endpoint defaults to the origin the script was loaded from.
 */
export function autoInit(current: HTMLScriptElement | null): void {
  try {
    const script =
      current && current.hasAttribute('data-api-key')
        ? current
        : (document.querySelector('script[data-api-key]') as HTMLScriptElement | null);
    const key = script && script.getAttribute('data-api-key');
    if (!script || !key) return;
    const hasAttribute = (name: string) => script.hasAttribute(name);
    init({
      apiKey: key,
      endpoint: script.getAttribute('data-endpoint') || new URL(script.src, location.href).origin,
      respectDoNotTrack: hasAttribute('data-respect-dnt'),
      respectGlobalPrivacyControl: hasAttribute('data-respect-gpc'),
      debug: hasAttribute('data-debug'),
    });
  } catch (e) {
    /* never break the host page */
  }
}
