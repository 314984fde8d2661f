import neostandard from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    ignores: ['**/dist/**', '**/miniprogram_dist/**', '**/node_modules/**', '**/.tap/**']
  }),
  {
    // Lines a reader sees whole. Source only: tests may hold a long assertion message.
    files: ['packages/*/src/**/*.ts'],
    rules: {
      '@stylistic/max-len': ['error', { code: 120, ignoreUrls: false, ignoreStrings: false, ignoreTemplateLiterals: false }],
      // One-line type literals separate members with commas, as the rest of the house does.
      '@stylistic/member-delimiter-style': ['error', {
        multiline: { delimiter: 'none' },
        singleline: { delimiter: 'comma', requireLast: false }
      }]
    }
  },
  {
    // The mini-program runtime's globals, in the example mini-program (CommonJS, as WeChat loads it).
    files: ['examples/miniprogram/**/*.js'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { App: 'readonly', Page: 'readonly', Component: 'readonly', getApp: 'readonly', wx: 'readonly', require: 'readonly', module: 'writable' }
    }
  }
]
