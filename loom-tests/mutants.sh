#!/usr/bin/env bash
# Proof that the loom models bite: builds the cache once per planted bug (the
# `tls_session_cache_mutant` cfg values declared in the root Cargo.toml, never
# enabled in normal builds) and checks that the model expected to catch it FAILS.
# Prints each mutant, the model, the iteration and time at which it failed.
# Exits non-zero if a mutant survives (its model passes or times out).
#
#   loom-tests/mutants.sh            # every mutant
#   loom-tests/mutants.sh NAME...    # only these mutants
#
# Each mutant builds in its own target dir (target/loom-mutant-NAME), since
# RUSTFLAGS differ; the first run builds the dependencies once per mutant.
set -uo pipefail
cd "$(dirname "$0")/.."

# mutant | test file | model (test name) | time limit (s)
MUTANTS=(
    "slot_load_store|loom_v2|model_14_replace_replace|300"
    "order_after_pointer|loom_remove|model_03a_add_remove_new_id|300"
    "capacity_check_then_act|loom_v2|model_15_last_free_place|300"
    "release_before_unlink|loom_add|model_08a_full_cache_capacity_1|300"
    "read_lock_as_exclusive|loom_v2|model_14_replace_replace|300"
    "store_readd_unchecked|loom_remove|model_21_store_answer_remove|300"
    "store_readd_fallback_unchecked|loom_remove|model_21b_store_answer_remove_two_step|300"
    "store_readd_ignores_in_flight|loom_remove|model_21c_lookup_racing_remove_in_its_callback|300"
    "mark_relaxed|loom_remove|model_21_store_answer_remove|300"
)

export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true
survived=0
results=()
for entry in "${MUTANTS[@]}"; do
    IFS='|' read -r mutant file model limit <<<"$entry"
    if (($#)) && [[ " $* " != *" $mutant "* ]]; then
        continue
    fi
    echo "==> mutant $mutant: expecting $file::$model to fail"
    export RUSTFLAGS="--cfg tls_session_cache_loom --cfg crossbeam_loom --cfg tls_session_cache_mutant=\"$mutant\""
    target="target/loom-mutant-$mutant"
    if ! cargo test -p loom-tests --release --target-dir "$target" --test "$file" --no-run; then
        echo "mutant $mutant: BUILD FAILED"
        survived=1
        results+=("$(printf '%-26s %-36s BUILD FAILED' "$mutant" "$model")")
        continue
    fi
    log="$target/$model.log"
    t0=$(date +%s.%N)
    timeout "$limit" cargo test -p loom-tests --release --target-dir "$target" --test "$file" \
        -- --exact "$model" --nocapture --test-threads=1 >"$log" 2>&1
    rc=$?
    dt=$(echo "$(date +%s.%N) - $t0" | bc)
    line=$(grep -o 'model [^:]*: FAILED at iteration.*' "$log" | head -1)
    why=$(grep -m1 -A1 "panicked at" "$log" | tail -1 | cut -c1-100)
    if ((rc == 0)); then
        verdict="SURVIVED (model passed)"
        survived=1
    elif ((rc == 124)); then
        verdict="SURVIVED (model timed out after ${limit} s)"
        survived=1
    else
        verdict="caught (exit $rc) ${line:-aborted} -- $why"
    fi
    printf -v wall '%.1f' "$dt"
    echo "mutant $mutant: $verdict (wall ${wall} s)"
    results+=("$(printf '%-26s %-36s %s (wall %s s)' "$mutant" "$model" "$verdict" "$wall")")
done

echo
echo "mutant results:"
printf '%s\n' "${results[@]}"
exit "$survived"
