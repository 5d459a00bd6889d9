// Bundles src/ with esbuild: minified IIFE (global TrackFlow) + ESM.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));
const common = {
  bundle: true,
  target: ['es2018'],
  legalComments: 'none',
  banner: { js: `/*! TrackFlow tracker v${version} */` },
  logLevel: 'info',
};

await build({
  ...common,
  entryPoints: ['src/iife.ts'],
  outfile: 'dist/trackflow.min.js',
  format: 'iife',
  minify: true,
  mangleProps: /^_/,
});
await build({
  ...common,
  entryPoints: ['src/index.ts'],
  outfile: 'dist/trackflow.esm.js',
  format: 'esm',
});
