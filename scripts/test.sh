#!/usr/bin/env bash
# The one test command (npm test, and .ci/run). It installs and starts what the tests
# need, so a fresh machine needs nothing but Node.js and this repository.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# Headless Chromium for the hosted-page tests comes from Debian, never a download.
if [ ! -x /usr/bin/chromium ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi

# PostgreSQL for the storage and end-to-end suites (127.0.0.1:5432, trust auth, database test).
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi

npx tsc -p .
# Node 20's test runner takes no globs: list the files.
mapfile -t files < <(find test -name '*.test.ts' | sort)
# The timeout is a hang detector, not a speed check: the CLI suites start a process per
# command, and on a busy machine each passed the old 3 minutes.
exec node --import tsx --test --test-concurrency=2 --test-timeout=420000 "${files[@]}"
