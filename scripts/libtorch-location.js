// Where libtorch lives for this package, and which version it is. Shared by the setup script,
// the build and the loader (lib/native.ts has a typed twin that calls this file).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

/** The torch folder the package uses: <root>/.libtorch/torch (a folder or a symlink), or null. */
function resolveTorchDir(root) {
  const dir = path.join(root, '.libtorch', 'torch');
  return fs.existsSync(path.join(dir, 'lib')) && fs.existsSync(path.join(dir, 'include')) ? fs.realpathSync(dir) : null;
}

/** "2.13.0" from a torch folder's CMake package version, or null when it has none. */
function readTorchVersion(torchDir) {
  try {
    const text = fs.readFileSync(path.join(torchDir, 'share', 'cmake', 'Torch', 'TorchConfigVersion.cmake'), 'utf8');
    const m = text.match(/PACKAGE_VERSION "([^"]+)"/);
    return m ? m[1] : null;
  } catch {
    return null;
  }
}

/** What setup-libtorch recorded about its choice, or null. */
function readSource(root) {
  try {
    return JSON.parse(fs.readFileSync(path.join(root, '.libtorch', 'source.json'), 'utf8'));
  } catch {
    return null;
  }
}

module.exports = { resolveTorchDir, readTorchVersion, readSource };
