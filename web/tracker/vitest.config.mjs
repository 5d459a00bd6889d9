import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    environment: 'jsdom',
    environmentOptions: { jsdom: { url: 'https://shop.example.com/start?x=1' } },
    include: ['test/**/*.test.ts'],
    restoreMocks: true,
  },
});
