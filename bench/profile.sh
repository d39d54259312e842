#!/usr/bin/env bash
# The SQLite authorise load against a server started with --cpu-prof; prints the top 25
# self-time functions (and, where perf works, the native split). BENCH_SECONDS sets the
# run length; BENCH_PROFILE_DIR keeps the .cpuprofile somewhere of your choosing.
set -euo pipefail
cd "$(dirname "$0")/.."
exec node --import tsx bench/run.ts --profile
