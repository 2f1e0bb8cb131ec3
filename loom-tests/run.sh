#!/usr/bin/env bash
# Runs every loom model of tls-session-cache (loom-tests/tests/loom_*.rs) and
# prints, for each, its name, iteration count, time and preemption bound.
#
#   loom-tests/run.sh              # every model, each at its own preemption bound
#   loom-tests/run.sh FILTER       # only models whose test name contains FILTER
#   loom-tests/run.sh --mutants    # then also loom-tests/mutants.sh (planted bugs)
#   LOOM_MAX_PREEMPTIONS=N loom-tests/run.sh   # one bound for every model
#
# Release mode with debug assertions, its own target dir (target/loom), RUSTFLAGS
# --cfg tls_session_cache_loom --cfg crossbeam_loom. See docs/LOOM.md.
set -euo pipefail
cd "$(dirname "$0")/.."

mutants=0
filter=()
for a in "$@"; do
    case "$a" in
        --mutants) mutants=1 ;;
        *) filter+=("$a") ;;
    esac
done

export RUSTFLAGS="--cfg tls_session_cache_loom --cfg crossbeam_loom"
export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true
target=target/loom
cargo test -p loom-tests --release --target-dir "$target" --no-run

log="$target/loom-models.log"
t0=$SECONDS
# Two test threads: one per core of the CI machine.
if ! cargo test -p loom-tests --release --target-dir "$target" -- \
    --nocapture --test-threads="${LOOM_TEST_THREADS:-2}" "${filter[@]}" 2>&1 | tee "$log"; then
    echo "loom models FAILED (log: $log)"
    exit 1
fi
echo
echo "loom models ($((SECONDS - t0)) s in all):"
grep -o 'model [^:]*: [0-9]* iterations in .*' "$log" | sort

if ((mutants)); then
    echo
    loom-tests/mutants.sh
fi
