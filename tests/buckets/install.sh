#!/usr/bin/env bash
# Installs Azurite (pinned in package-lock.json) into tests/buckets/node_modules
# for StartAzurite, which runs this itself when the install is missing or was
# made from another package-lock.json. Needs node and npm; reaches only the
# npm registry.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
node_modules/.bin/azurite-blob --version
# What StartAzurite compares with package-lock.json to know the install is current.
cp package-lock.json node_modules/.installed-from-lock.json
