#!/usr/bin/env bash
# A 3-member etcd cluster on loopback, for kvs's tests and for trying the etcd backend by hand.
#
#   scripts/etcd-cluster.sh start      # members m1..m3, clients on 127.0.0.1:23791..23793
#   scripts/etcd-cluster.sh url        # the kvs URL prefix: etcd://127.0.0.1:23791,...
#   scripts/etcd-cluster.sh status     # which member leads
#   scripts/etcd-cluster.sh restart N  # starts member N again (after a kill)
#   scripts/etcd-cluster.sh stop       # stops the members and removes their data
#
# Data, logs and pid files live in $KVS_ETCD_CLUSTER (default /tmp/kvs-etcd-cluster). Needs
# etcd (Debian: apt-get install etcd-server) and curl.
set -euo pipefail
dir="${KVS_ETCD_CLUSTER:-/tmp/kvs-etcd-cluster}"
etcd="${ETCD_BIN:-$(command -v etcd || echo /usr/bin/etcd)}"
cluster="m1=http://127.0.0.1:23801,m2=http://127.0.0.1:23802,m3=http://127.0.0.1:23803"
endpoints="127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793"

start_member() { # N STATE
    local n="$1" state="$2"
    mkdir -p "$dir"
    # Generous transaction and request limits, so that the shared test suite's bigger
    # transactions (and its 16 MiB keys and values) fit; the defaults are 128 operations and
    # 1.5 MiB. A short election timeout makes failover quick on loopback.
    ETCD_UNSUPPORTED_ARCH="${ETCD_UNSUPPORTED_ARCH:-}" "$etcd" \
        --name "m$n" --data-dir "$dir/m$n" \
        --listen-client-urls "http://127.0.0.1:2379$n" --advertise-client-urls "http://127.0.0.1:2379$n" \
        --listen-peer-urls "http://127.0.0.1:2380$n" --initial-advertise-peer-urls "http://127.0.0.1:2380$n" \
        --initial-cluster "$cluster" --initial-cluster-state "$state" --initial-cluster-token kvs-test \
        --max-txn-ops 16384 --max-request-bytes 134217728 \
        --heartbeat-interval 50 --election-timeout 500 \
        >"$dir/m$n.log" 2>&1 &
    echo $! >"$dir/m$n.pid"
}

healthy() { # every member answers /health with "health": "true"
    for n in 1 2 3; do
        curl -fs "http://127.0.0.1:2379$n/health" 2>/dev/null | grep -q '"health":"true"' || return 1
    done
}

case "${1:-}" in
start)
    if [ -f "$dir/m1.pid" ] && kill -0 "$(cat "$dir/m1.pid")" 2>/dev/null; then
        echo "already running in $dir"; exit 0
    fi
    rm -rf "$dir"
    for n in 1 2 3; do start_member "$n" new; done
    for _ in $(seq 1 100); do healthy && break; sleep 0.1; done
    healthy || { echo "etcd did not become healthy; logs in $dir" >&2; tail -n 5 "$dir"/m*.log >&2; exit 1; }
    echo "etcd cluster up in $dir: etcd://$endpoints/PREFIX"
    ;;
restart)
    n="${2:?member number}"
    start_member "$n" existing
    ;;
url)
    echo "etcd://$endpoints"
    ;;
status)
    for n in 1 2 3; do
        printf 'm%s 127.0.0.1:2379%s ' "$n" "$n"
        curl -fs -X POST -d '{}' "http://127.0.0.1:2379$n/v3/maintenance/status" || printf 'down'
        echo
    done
    ;;
stop)
    for n in 1 2 3; do
        if [ -f "$dir/m$n.pid" ]; then kill "$(cat "$dir/m$n.pid")" 2>/dev/null || true; fi
    done
    sleep 0.3
    for n in 1 2 3; do
        if [ -f "$dir/m$n.pid" ]; then kill -9 "$(cat "$dir/m$n.pid")" 2>/dev/null || true; fi
    done
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start|url|status|restart N|stop" >&2; exit 2
    ;;
esac
