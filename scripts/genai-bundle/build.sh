#!/usr/bin/env bash
# Rebuild telephony/web/dashboard/static/genai.js (the @google/genai browser SDK, one ES module,
# served by the package so the page needs no CDN): `scripts/genai-bundle/build.sh`.
# Needs node and npm; the versions are pinned in package.json (and package-lock.json).
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund 2>/dev/null || npm install --no-audit --no-fund
npm run build
rm -rf node_modules
echo "built ../../telephony/web/dashboard/static/genai.js"
