#!/usr/bin/env bash
# Install the official BIDS validator for tests/test_bids_validator.py.
#
# The npm package `bids-validator` 1.15.x is the last release that runs on Node.js
# (the machine's Node.js 20; it needs >= 18). Version 2 of the validator is a Deno
# program (published on JSR as @bids/validator) and does not run on Node.js.
# It installs ~700 MB (its dependencies pull in build tools) in about a minute.
#
#   bash .ci/bids-validator.sh            # installs globally: `bids-validator` on PATH
#   BIDS_VALIDATOR_VERSION=1.15.0 bash .ci/bids-validator.sh
set -euo pipefail
VERSION="${BIDS_VALIDATOR_VERSION:-1.15.0}"

if command -v bids-validator >/dev/null 2>&1 && [ "$(bids-validator --version 2>/dev/null)" = "$VERSION" ]; then
  echo "bids-validator $VERSION already installed: $(command -v bids-validator)"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
node -e 'const m = +process.versions.node.split(".")[0]; if (m < 18) { console.error(`bids-validator needs Node.js >= 18, found ${process.versions.node}`); process.exit(1); }'
npm install --global --no-audit --no-fund --loglevel=error "bids-validator@${VERSION}"
echo "installed bids-validator $(bids-validator --version) at $(command -v bids-validator)"
