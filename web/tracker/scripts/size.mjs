// Prints raw and gzipped size of dist/trackflow.min.js; exits 1 above the 5 KB gzip budget.
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const BUDGET = 5 * 1024;
const buf = readFileSync(new URL('../dist/trackflow.min.js', import.meta.url));
const gz = gzipSync(buf, { level: 9 }).length;
console.log(`dist/trackflow.min.js: ${buf.length} bytes raw, ${gz} bytes gzipped (${(gz / 1024).toFixed(2)} KB; budget ${BUDGET} bytes)`);
if (gz > BUDGET) {
  console.error('over budget');
  process.exit(1);
}
