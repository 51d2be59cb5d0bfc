#!/bin/sh
# Run every fuzz target for a bounded time (default 12 s each); non-zero exit on any crash.
# Usage: fuzz/run.sh [seconds-per-target] [target ...]   -- see fuzz/README.md
exec "${PYTHON:-python3}" "$(dirname "$0")/run.py" "$@"
