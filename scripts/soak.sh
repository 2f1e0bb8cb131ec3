#!/usr/bin/env bash
# Soak test: runs the `stress` example for SECONDS on THREADS threads and samples
# its resident set size (VmRSS from /proc/PID/status) once a second into a CSV,
# then plots it (scripts/plot_soak.py, standard library only) as an SVG.
#
#   scripts/soak.sh SECONDS [THREADS]
#
# Environment (all optional):
#   SOAK_CSV   where the samples go        (default target/soak/soak-<threads>t.csv)
#   SOAK_SVG   where the plot goes         (default docs/img/soak.svg)
#   SOAK_ARGS  extra flags for the example (e.g. "--capacity 20480 --ids 65536")
#
# This is the same program as `cargo run --release --example stress -- --threads N
# --seconds S`; it is built with `cargo build` first and then started directly, so
# that the PID sampled is the stress process itself and not cargo's.
# Exits with the example's status (non-zero on any invariant violation).
set -euo pipefail

SECONDS_ARG=${1:?usage: scripts/soak.sh SECONDS [THREADS]}
THREADS=${2:-2}
cd "$(dirname "$0")/.."

CSV=${SOAK_CSV:-target/soak/soak-${THREADS}t.csv}
SVG=${SOAK_SVG:-docs/img/soak.svg}
mkdir -p "$(dirname "$CSV")" "$(dirname "$SVG")"

cargo build --release --example stress
BIN=$(cargo metadata --format-version 1 --no-deps \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/examples/stress

# shellcheck disable=SC2086
"$BIN" --threads "$THREADS" --seconds "$SECONDS_ARG" ${SOAK_ARGS:-} &
PID=$!
trap 'kill "$PID" 2>/dev/null || true' INT TERM

echo "elapsed_s,rss_kib" > "$CSV"
START=$(date +%s.%N)
while kill -0 "$PID" 2>/dev/null; do
    RSS=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status" 2>/dev/null || true)
    [ -n "$RSS" ] || break
    NOW=$(date +%s.%N)
    awk -v n="$NOW" -v s="$START" -v r="$RSS" 'BEGIN { printf "%.1f,%s\n", n - s, r }' >> "$CSV"
    sleep 1
done

STATUS=0
wait "$PID" || STATUS=$?
echo "stress exited with status $STATUS; $(($(wc -l < "$CSV") - 1)) samples in $CSV"
python3 scripts/plot_soak.py "$CSV" "$SVG" --title "stress example, $THREADS threads, ${SECONDS_ARG} s ${SOAK_ARGS:-}"
exit "$STATUS"
