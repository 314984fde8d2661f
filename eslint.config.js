import neostandard from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    ignores: ['**/dist/**', '**/miniprogram_dist/**', '**/node_modules/**', '**/.tap/**']
  }),
  {
    // The mini-program runtime's globals, in the example mini-program (CommonJS, as WeChat loads it).
    files: ['examples/miniprogram/**/*.js'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { App: 'readonly', Page: 'readonly', Component: 'readonly', getApp: 'readonly', wx: 'readonly', require: 'readonly', module: 'writable' }
    }
  }
]
