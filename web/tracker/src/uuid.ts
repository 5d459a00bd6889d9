/** UUID v4: crypto.randomUUID when available (secure contexts only), else getRandomValues (else Math.random). */
export function uuid(): string {
  const cryptoApi: Crypto | undefined = typeof crypto != 'undefined' ? crypto : undefined;
  if (cryptoApi && cryptoApi.randomUUID) return cryptoApi.randomUUID();
  // one random byte per hex digit: 30 × 4 bits + 2 bits of the variant digit = 122 random bits
  const randomBytes = new Uint8Array(31);
  let next = 0;
  try {
    cryptoApi!.getRandomValues(randomBytes);
  } catch (e) {
    while (next < 31) randomBytes[next++] = Math.random() * 256;
    next = 0;
  }
  return 'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, (placeholder) => {
    const nibble = randomBytes[next++] & 15;
    // y is the variant digit: 8, 9, a or b
    return (placeholder == 'x' ? nibble : (nibble & 3) | 8).toString(16);
  });
}
