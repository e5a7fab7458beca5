#!/bin/sh
# Prints the agent's version, a semantic version from the nearest release tag:
#   v0.4.0                    on the tagged commit
#   v0.4.0-3-gabc1234         three commits after it (git describe)
#   v0.4.0-3-gabc1234-dirty   with uncommitted changes to tracked files
#   v0.0.0-127-gabc1234       before the first release tag (127 commits)
#   dev                       outside a git checkout (a source tarball)
# Release tags are vMAJOR.MINOR.PATCH (optionally -PRERELEASE); other tags are
# ignored so that they cannot leak into a version.
set -eu
if ! git rev-parse --verify -q HEAD >/dev/null 2>&1; then
  echo dev
  exit 0
fi
if git describe --tags --match 'v[0-9]*.[0-9]*.[0-9]*' --dirty 2>/dev/null; then
  exit 0
fi
dirty=
# Refresh the index first, as git describe --dirty does, so a touched file is not dirty.
git update-index -q --refresh >/dev/null 2>&1 || true
git diff-index --quiet HEAD -- || dirty=-dirty
echo "v0.0.0-$(git rev-list --count HEAD)-g$(git rev-parse --short HEAD)$dirty"
