/**
 * Builds the standalone script (src/standalone.ts and the view it mounts) into one minified
 * IIFE, dvl_jupyter/labextension/standalone.js, which dvl_jupyter/standalone.py inlines into
 * a result's text/html for VS Code, Colab and nbconvert's HTML.
 *
 * The style sheet goes in as a string. Outside JupyterLab the --jp-* theme variables are not
 * defined, so every var(--jp-x) without a fallback gets one: VS Code's matching theme
 * variable when there is one (so the view follows VS Code's light, dark and high-contrast
 * themes), else the value of JupyterLab's light theme. And its selectors are scoped to the
 * view's root, so the page's own styles cannot restyle it (see scoped()).
 */
import { build, transform } from 'esbuild';
import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const outfile = join(here, '..', 'dvl_jupyter', 'labextension', 'standalone.js');

const FALLBACKS = {
  '--jp-ui-font-color0': 'var(--vscode-editor-foreground, rgba(0, 0, 0, 1))',
  '--jp-ui-font-color1': 'var(--vscode-editor-foreground, rgba(0, 0, 0, 0.87))',
  '--jp-ui-font-color2': 'var(--vscode-descriptionForeground, rgba(0, 0, 0, 0.6))',
  '--jp-ui-font-color3': 'var(--vscode-disabledForeground, rgba(0, 0, 0, 0.45))',
  '--jp-ui-inverse-font-color1': 'var(--vscode-button-foreground, #ffffff)',
  '--jp-ui-font-family':
    'var(--vscode-font-family, system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif)',
  '--jp-ui-font-size0': '11px',
  '--jp-ui-font-size1': '13px',
  '--jp-ui-font-size2': '15px',
  '--jp-code-font-family': 'var(--vscode-editor-font-family, Menlo, Consolas, "DejaVu Sans Mono", monospace)',
  '--jp-code-font-size': '13px',
  '--jp-layout-color0': 'var(--vscode-editor-background, #ffffff)',
  '--jp-layout-color1': 'var(--vscode-editor-background, #ffffff)',
  '--jp-layout-color2': 'var(--vscode-editorWidget-background, #eeeeee)',
  '--jp-border-color1': 'var(--vscode-editorWidget-border, #bdbdbd)',
  '--jp-border-color2': 'var(--vscode-editorGroup-border, #e0e0e0)',
  '--jp-brand-color0': 'var(--vscode-button-hoverBackground, #0d47a1)',
  '--jp-brand-color1': 'var(--vscode-button-background, #1976d2)',
  '--jp-error-color1': 'var(--vscode-errorForeground, #d32f2f)',
  '--jp-warn-color1': 'var(--vscode-editorWarning-foreground, #e65100)',
  '--jp-elevation-z4': '0 2px 8px rgba(0, 0, 0, 0.25)'
};

export function withFallbacks(css) {
  const missing = new Set();
  const out = css.replace(/var\((--jp-[a-z0-9-]+)\)/g, (all, name) => {
    if (!(name in FALLBACKS)) {
      missing.add(name);
      return all;
    }
    return `var(${name}, ${FALLBACKS[name]})`;
  });
  if (missing.size) {
    throw new Error(`no standalone fallback for ${[...missing].join(', ')}: add it to FALLBACKS`);
  }
  return out;
}

/**
 * Every selector scoped under `.dvl-Valuation.dvl-standalone` (the view's root there): the
 * view then sits inside other pages' styles (nbconvert's and JupyterLab's rendered HTML
 * restyle every table, row and image) and wins over them, whatever their order.
 */
export function scoped(css) {
  const root = '.dvl-Valuation.dvl-standalone';
  const plain = css.replace(/\/\*[\s\S]*?\*\//g, '');
  if (plain.includes('@')) {
    throw new Error('base.css has an at-rule: scope it by hand in build-standalone.mjs');
  }
  return plain
    .split('}')
    .map(rule => rule.trim())
    .filter(rule => rule)
    .map(rule => {
      const [selectors, body] = rule.split('{');
      const scope = selectors
        .split(',')
        .map(sel => sel.trim())
        .map(sel =>
          sel.startsWith('.dvl-Valuation') ? sel.replace('.dvl-Valuation', root) : `${root} ${sel}`
        );
      return `${scope.join(',')}{${body}}`;
    })
    .join('\n');
}

const css = (
  await transform(scoped(withFallbacks(readFileSync(join(here, 'style', 'base.css'), 'utf-8'))), {
    loader: 'css',
    minify: true
  })
).code;

await build({
  entryPoints: [join(here, 'src', 'standalone.ts')],
  outfile,
  bundle: true,
  format: 'iife',
  minify: true,
  target: 'es2020',
  legalComments: 'none',
  charset: 'ascii',
  define: { __DVL_STYLE__: JSON.stringify(css) },
  logLevel: 'warning'
});

const text = readFileSync(outfile, 'utf-8');
// Inlined in a <script> element, the bundle must not end it early nor open an HTML comment.
if (/<\/script/i.test(text) || text.includes('<!--')) {
  throw new Error(`${outfile} contains "</script" or "<!--": it cannot be inlined`);
}
console.log(`standalone.js: ${(statSync(outfile).size / 1024).toFixed(1)} KiB`);
