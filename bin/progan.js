#!/usr/bin/env node
'use strict';
// The compiled CLI when present; in a source checkout without `npm run build:ts`, the TypeScript
// through tsx (a dev dependency).
const fs = require('node:fs');
const path = require('node:path');
const compiled = path.join(__dirname, '..', 'dist', 'cli.js');
if (fs.existsSync(compiled)) {
  require(compiled).main(process.argv);
} else {
  require('tsx/cjs');
  require(path.join(__dirname, '..', 'lib', 'cli.ts')).main(process.argv);
}
