/** UUID v4: crypto.randomUUID when available (secure contexts only), else getRandomValues. */
export function uuid(): string {
  const c: Crypto | undefined = typeof crypto != 'undefined' ? crypto : undefined;
  try {
    if (c && c.randomUUID) return c.randomUUID();
  } catch (e) {
    /* fall through */
  }
  const b = new Uint8Array(16);
  try {
    c!.getRandomValues(b);
  } catch (e) {
    for (let i = 0; i < 16; i++) b[i] = (Math.random() * 256) | 0;
  }
  b[6] = (b[6] & 15) | 64;
  b[8] = (b[8] & 63) | 128;
  let s = '';
  for (let i = 0; i < 16; i++) {
    s += (b[i] + 256).toString(16).slice(1);
    if (i == 3 || i == 5 || i == 7 || i == 9) s += '-';
  }
  return s;
}
