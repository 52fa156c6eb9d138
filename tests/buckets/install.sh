#!/usr/bin/env bash
# Installs Azurite (pinned in package-lock.json) into tests/buckets/node_modules
# for StartAzurite. Needs node and npm; reaches only the npm registry.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
node_modules/.bin/azurite-blob --version
