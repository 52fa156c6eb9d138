#!/usr/bin/env bash
# Installs fauxqs and rhea (pinned in package-lock.json) into
# tests/queues/node_modules for StartSQS and StartServiceBus, which run this
# themselves when the install is missing or was made from another
# package-lock.json. Needs node and npm; reaches only the npm registry.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
node -e 'import("./node_modules/fauxqs/dist/app.js").then(() => console.log("fauxqs loads"))'
node -e 'import("rhea").then(() => console.log("rhea loads"))'
# What StartSQS and StartServiceBus compare with package-lock.json to know
# the install is current.
cp package-lock.json node_modules/.installed-from-lock.json
