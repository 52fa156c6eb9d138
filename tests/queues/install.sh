#!/usr/bin/env bash
# Installs fauxqs (pinned in package-lock.json) into tests/queues/node_modules
# for StartSQS, which runs this itself when the install is missing or was
# made from another package-lock.json. Needs node and npm; reaches only the
# npm registry.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
node -e 'import("./node_modules/fauxqs/dist/app.js").then(() => console.log("fauxqs loads"))'
# What StartSQS compares with package-lock.json to know the install is current.
cp package-lock.json node_modules/.installed-from-lock.json
