/** UUID v4: crypto.randomUUID when available (secure contexts only), else getRandomValues (else Math.random). */
export function uuid(): string {
  const c: Crypto | undefined = typeof crypto != 'undefined' ? crypto : undefined;
  if (c && c.randomUUID) return c.randomUUID();
  // one random byte per hex digit: 30 × 4 bits + 2 bits of the variant digit = 122 random bits
  const b = new Uint8Array(31);
  let i = 0;
  try {
    c!.getRandomValues(b);
  } catch (e) {
    while (i < 31) b[i++] = Math.random() * 256;
    i = 0;
  }
  return 'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, (ch) => {
    const r = b[i++] & 15;
    return (ch == 'x' ? r : (r & 3) | 8).toString(16);
  });
}
