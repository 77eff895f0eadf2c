import { defineConfig } from 'vitest/config';

export default defineConfig({
  // The standalone build defines the style sheet (scripts/build-standalone.mjs); tests need
  // only a stand-in.
  define: { __DVL_STYLE__: JSON.stringify('.dvl-Valuation{}') },
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup-dom.ts']
  }
});
