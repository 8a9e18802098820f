#!/bin/sh
# Run every golden case: ../shared/golden (env NGPT_GOLDEN_DIR overrides) and tests/golden.
# usage: run_golden.sh NGPT_CASE SOURCE_ROOT [ngpt-case options]
set -u
runner=$1
src=$2
shift 2
shared=${NGPT_GOLDEN_DIR:-$src/../shared/golden}
roots=""
if [ -d "$shared" ]; then
    roots="$shared"
else
    echo "SKIP: the shared golden cases are not at $shared (set NGPT_GOLDEN_DIR)" >&2
    exit 77
fi
[ -d "$src/tests/golden" ] && roots="$roots $src/tests/golden"
exec "$runner" all $roots --device "${NGPT_DEVICE:-cpu}" "$@"
