#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) each, from the committed seed
# corpus, and prints executions and coverage per target. Exits non-zero if a target
# crashed (or failed to build); the crashing input is then in
# fuzz/artifacts/<target>/ and the libFuzzer output in fuzz/target/run-logs/.
#
# Usage: fuzz/run.sh [SECONDS]        (from anywhere)
set -u
secs=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

# cargo-fuzz 0.13 builds with the stable toolchain when RUSTC_BOOTSTRAP=1 lets it
# use the nightly-only sanitizer flags (-Zsanitizer=address; see docs/FUZZING.md).
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.1 --locked || exit 1
fi
export RUSTC_BOOTSTRAP=1

targets=(ops rustls_store redis_codec)
cargo fuzz build || { echo "fuzz: build failed" >&2; exit 1; }

logs="$here/target/run-logs"
mkdir -p "$logs"
status=0
summary=()
for t in "${targets[@]}"; do
    # New inputs go to a scratch corpus (ignored); the committed seeds are read only.
    work="$here/target/run-corpus/$t"
    rm -rf "$work" && mkdir -p "$work"
    echo "== $t: ${secs}s"
    cargo fuzz run "$t" "$work" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$logs/$t.log" 2>&1
    rc=$?
    # The last status line: "#N  DONE  cov: X ft: Y corp: Z/Sb ... exec/s: W ...".
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$logs/$t.log" | tail -n 1)
    if [ "$rc" -ne 0 ] || [ -z "$done_line" ]; then
        status=1
        echo "!! $t FAILED (exit $rc); last lines of $logs/$t.log:"
        tail -n 40 "$logs/$t.log"
        ls "$here/artifacts/$t" 2>/dev/null | sed 's/^/   artifact: /'
        summary+=("$(printf '%-13s CRASHED (exit %s)' "$t" "$rc")")
        continue
    fi
    execs=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$done_line")
    cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$done_line")
    ft=$(sed -nE 's/.*ft: ([0-9]+).*/\1/p' <<<"$done_line")
    corp=$(sed -nE 's/.*corp: ([0-9]+).*/\1/p' <<<"$done_line")
    eps=$(sed -nE 's/.*exec\/s: ([0-9]+).*/\1/p' <<<"$done_line")
    summary+=("$(printf '%-13s execs %-10s cov %-6s ft %-6s corpus %-6s exec/s %s' \
        "$t" "$execs" "$cov" "$ft" "$corp" "$eps")")
done

echo
echo "== fuzz summary (${secs}s per target)"
printf '%s\n' "${summary[@]}"
exit $status
