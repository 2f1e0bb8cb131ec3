#!/usr/bin/env bash
# Throwaway Redis servers for the `redis` feature's tests and demo, persistence off,
# bound to 127.0.0.1, stopped by pid.
#
#   scripts/redis.sh start PORT DIR          one server on PORT, files in DIR
#   scripts/redis.sh stop DIR                stop what `start` started
#   scripts/redis.sh cluster-start BASEPORT DIR
#                                            3 cluster nodes on BASEPORT..BASEPORT+2
#                                            (bus ports +10000), cluster created
#   scripts/redis.sh cluster-stop DIR        stop them
#
# Needs redis-server and redis-cli (Debian: apt-get install -y redis-server).
set -euo pipefail

need() {
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
        echo "redis.sh: redis-server/redis-cli not found: apt-get install -y redis-server" >&2
        exit 1
    }
}

start_one() { # PORT DIR [extra args...]
    local port=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize yes --pidfile "$dir/redis-$port.pid" --dir "$dir" \
        --logfile "$dir/redis-$port.log" --enable-debug-command local "$@"
    for _ in $(seq 100); do
        [ "$(redis-cli -h 127.0.0.1 -p "$port" PING 2>/dev/null)" = PONG ] && return 0
        sleep 0.05
    done
    echo "redis.sh: redis-server on port $port did not start (see $dir/redis-$port.log)" >&2
    exit 1
}

stop_all() { # DIR
    local dir=$1 pidfile pid
    for pidfile in "$dir"/redis-*.pid; do
        [ -e "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if kill "$pid" 2>/dev/null; then
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        fi
        rm -f "$pidfile"
    done
}

case "${1:-}" in
start)
    need
    start_one "$2" "$3"
    echo "redis://127.0.0.1:$2/"
    ;;
stop)
    stop_all "$2"
    ;;
cluster-start)
    need
    base=$2 dir=$3
    nodes=()
    for i in 0 1 2; do
        port=$((base + i))
        start_one "$port" "$dir/node-$port" --cluster-enabled yes \
            --cluster-config-file nodes.conf --cluster-node-timeout 2000
        # stop_all looks for pid files directly under DIR.
        ln -sf "node-$port/redis-$port.pid" "$dir/redis-$port.pid"
        nodes+=("127.0.0.1:$port")
    done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
    for _ in $(seq 200); do
        redis-cli -p "$base" CLUSTER INFO | grep -q cluster_state:ok && break
        sleep 0.05
    done
    printf 'redis://%s/ ' "${nodes[@]}"
    echo
    ;;
cluster-stop)
    stop_all "$2"
    ;;
*)
    sed -n '2,12p' "$0" >&2
    exit 2
    ;;
esac
