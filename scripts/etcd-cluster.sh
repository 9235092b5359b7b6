#!/usr/bin/env bash
# A 3-member etcd cluster on loopback, for kvs's tests and for trying the etcd backend by hand.
#
#   scripts/etcd-cluster.sh start      # members m1..m3, clients on 127.0.0.1:23791..23793
#   scripts/etcd-cluster.sh start --tls  # the same over TLS, with client certificates and users
#   scripts/etcd-cluster.sh url        # the kvs URL: etcd://127.0.0.1:23791,... (append /PREFIX);
#                                      # with --tls, etcds://.../PREFIX?ca=...&user=kvs
#   scripts/etcd-cluster.sh env        # with --tls, the `export KVS_ETCD_PASSWORD=...` line
#   scripts/etcd-cluster.sh status     # which member leads
#   scripts/etcd-cluster.sh restart N  # starts member N again (after a kill), waits till it serves
#   scripts/etcd-cluster.sh stop       # stops the members and removes their data
#
# Data, logs and pid files live in $KVS_ETCD_CLUSTER (default /tmp/kvs-etcd-cluster). Ports
# come from $KVS_ETCD_PORT_BASE (default 23790): member N serves clients on BASE+N and its
# peers on BASE+10+N; every command honours it, so two clusters can run side by side with
# different directories and bases. `start` succeeds only when the members answering on those
# ports are the ones it started (alive, and with the member IDs their logs report, under a
# cluster token unique to this start); otherwise, e.g. when another cluster holds the ports,
# it stops what it started and fails. `restart` likewise succeeds only once the member serves
# again; a member that cannot replay its write-ahead log (etcd 3.4 refuses entries over 10 MiB,
# as the shared suite's 16 MiB values make) is replaced by an empty one, which catches up from
# the leader. Needs etcd 3.4 or newer (Debian: apt-get install etcd-server) and curl.
#
# `start --tls` secures the cluster as production clusters are: TLS on client and peer ports,
# client certificates required (--client-cert-auth), and etcd authentication on. It makes
# everything secret at start, in $KVS_ETCD_CLUSTER/tls (mode 700), and commits nothing: a CA
# (ca.pem), the members' certificate, a client certificate (client.pem, client-key.pem, with
# no CN: etcd would take a CN as a user name, and refuses its HTTP gateway to certificates
# with one once auth is on; so the certificate alone grants nothing), a CA the cluster
# does not trust (other-ca.pem, for tests), and random passwords for the users root, `kvs`
# (read-write on keys starting with /app, which is where a URL's /app... prefix puts them)
# and `nobody` (no rights), in USER.password files. Auth tokens live 5 s unused
# (--auth-token-ttl), so that clients meet expired tokens often. Needs openssl too.
set -euo pipefail
dir="${KVS_ETCD_CLUSTER:-/tmp/kvs-etcd-cluster}"
etcd="${ETCD_BIN:-$(command -v etcd || echo /usr/bin/etcd)}"
base="${KVS_ETCD_PORT_BASE:-23790}"
case "$base" in
'' | *[!0-9]*) echo "KVS_ETCD_PORT_BASE must be a number, not '$base'" >&2; exit 2 ;;
esac
if [ "$base" -lt 1 ] || [ "$base" -gt 65522 ]; then
    echo "KVS_ETCD_PORT_BASE=$base puts a port outside 1..65535" >&2; exit 2
fi
client_port() { echo $((base + $1)); }
peer_port() { echo $((base + 10 + $1)); }
endpoints="127.0.0.1:$(client_port 1),127.0.0.1:$(client_port 2),127.0.0.1:$(client_port 3)"
tls="$dir/tls"
# Whether this cluster runs TLS: `start --tls` says so, later commands read it from $dir.
secure() { [ -f "$dir/secure" ]; }
scheme() { if secure; then echo https; else echo http; fi; }
cluster() {
    local s
    s="$(scheme)"
    echo "m1=$s://127.0.0.1:$(peer_port 1),m2=$s://127.0.0.1:$(peer_port 2),m3=$s://127.0.0.1:$(peer_port 3)"
}

member_curl() { # N PATH [JSON BODY]: a request to member N's client port (TLS: with the client certificate)
    # The body goes through stdin and the token through a header file, so that neither a
    # password nor a token shows in `ps`.
    local n="$1" path="$2" args=(-fs --max-time 2) body=""
    if secure; then args+=(--cacert "$tls/ca.pem" --cert "$tls/client.pem" --key "$tls/client-key.pem"); fi
    if [ $# -ge 3 ]; then args+=(-X POST --data-binary @-); body="$3"; fi
    if [ -n "${root_token:-}" ]; then args+=(-H "@$tls/root.header"); fi
    printf '%s' "$body" | curl "${args[@]}" "$(scheme)://127.0.0.1:$(client_port "$n")$path"
}

make_tls() { # the CA, certificates and passwords of a --tls cluster, made anew in $tls
    local ext
    mkdir -p "$tls" && chmod 700 "$tls"
    ext="$tls/ext.cnf"
    (
        cd "$tls"
        key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
        ca() { # NAME CN
            key "$1-key.pem"
            openssl req -x509 -new -key "$1-key.pem" -out "$1.pem" -days 7 -subj "/CN=$2" \
                -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
        }
        signed() { # NAME SUBJECT EXTENSIONS
            key "$1-key.pem"
            openssl req -new -key "$1-key.pem" -out "$1.csr" -subj "$2"
            printf '%s\n' "$3" >"$ext"
            openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
                -out "$1.pem" -days 7 -extfile "$ext" 2>/dev/null
            rm -f "$1.csr"
        }
        ca ca "kvs test CA"
        ca other-ca "a CA the kvs test cluster does not trust"
        signed member /CN=kvs-etcd-member "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth"
        signed client "/O=kvs test client" "extendedKeyUsage=clientAuth"
        for user in root kvs nobody; do openssl rand -hex 16 >"$user.password"; done
        rm -f "$ext" ca.srl
        chmod 600 ./*
    )
}

auth_call() { # PATH JSON: an auth request to member 1, as root once auth is on
    member_curl 1 "/v3/auth/$1" "$2" >/dev/null || fail_start "auth request $1 failed"
}

enable_auth() { # the users and roles of a --tls cluster, then auth on
    local b64key b64end
    b64key="$(printf '/app' | base64)"
    b64end="$(printf '/apq' | base64)" # the end of the /app prefix
    auth_call role/add '{"name":"root"}'
    auth_call user/add "{\"name\":\"root\",\"password\":\"$(cat "$tls/root.password")\"}"
    auth_call user/grant "{\"user\":\"root\",\"role\":\"root\"}"
    auth_call role/add '{"name":"kvs"}'
    auth_call role/grant "{\"name\":\"kvs\",\"perm\":{\"permType\":\"READWRITE\",\"key\":\"$b64key\",\"range_end\":\"$b64end\"}}"
    auth_call user/add "{\"name\":\"kvs\",\"password\":\"$(cat "$tls/kvs.password")\"}"
    auth_call user/grant "{\"user\":\"kvs\",\"role\":\"kvs\"}"
    auth_call user/add "{\"name\":\"nobody\",\"password\":\"$(cat "$tls/nobody.password")\"}"
    auth_call enable '{}'
}

start_member() { # N STATE [TOKEN: for a new cluster]
    local n="$1" state="$2" token="${3:-kvs-test}" client peer secured=()
    client="$(scheme)://127.0.0.1:$(client_port "$n")"
    peer="$(scheme)://127.0.0.1:$(peer_port "$n")"
    mkdir -p "$dir"
    if secure; then
        secured=(--cert-file "$tls/member.pem" --key-file "$tls/member-key.pem"
            --trusted-ca-file "$tls/ca.pem" --client-cert-auth
            --peer-cert-file "$tls/member.pem" --peer-key-file "$tls/member-key.pem"
            --peer-trusted-ca-file "$tls/ca.pem" --peer-client-cert-auth
            --auth-token simple --auth-token-ttl 5)
    fi
    # Generous transaction and request limits, so that the shared test suite's bigger
    # transactions (and its 16 MiB keys and values) fit; the defaults are 128 operations and
    # 1.5 MiB. Heartbeats and elections keep etcd's defaults (100 ms, 1 s): with 50 ms and
    # 500 ms, committing the suite's 16 MiB entries on two cores delayed heartbeats enough to
    # start an election every few seconds, and each lost the answer of a commit in flight
    # (README, "Not built yet"). The zap logger writes JSON lines, whose "local-member-id"
    # tells `start` and `restart` who serves. A new member's log replaces the old one; a
    # restarted member's is appended to it.
    if [ "$state" = new ]; then : >"$dir/m$n.log"; fi
    ETCD_UNSUPPORTED_ARCH="${ETCD_UNSUPPORTED_ARCH:-}" "$etcd" \
        --name "m$n" --data-dir "$dir/m$n" \
        --listen-client-urls "$client" --advertise-client-urls "$client" \
        --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
        --initial-cluster "$(cluster)" --initial-cluster-state "$state" --initial-cluster-token "$token" \
        --max-txn-ops 16384 --max-request-bytes 134217728 \
        --heartbeat-interval 100 --election-timeout 1000 \
        --logger zap --log-outputs stderr "${secured[@]}" \
        >>"$dir/m$n.log" 2>&1 &
    echo $! >"$dir/m$n.pid"
}

member_healthy() { # N: member N's client port answers /health with "health": "true"
    member_curl "$1" /health 2>/dev/null \
        | grep -q '"health":"true"'
}

healthy() { # every member's client port answers healthy
    local n
    for n in 1 2 3; do member_healthy "$n" || return 1; done
}

alive() { # N: member N's process (from its pid file) is running
    [ -f "$dir/m$1.pid" ] && kill -0 "$(cat "$dir/m$1.pid")" 2>/dev/null
}

own_id() { # N: member N's ID (decimal), the last its log reports; empty before it logs one
    local hex
    hex="$(grep -o '"local-member-id":"[0-9a-f]*"' "$dir/m$1.log" 2>/dev/null | tail -n 1 | cut -d'"' -f4 || true)"
    if [ -n "$hex" ]; then printf '%u' "0x$hex"; fi
}

serving_id() { # N: the ID (decimal) of the member answering on member N's client port
    member_curl "$1" /v3/maintenance/status '{}' 2>/dev/null \
        | sed -n 's/.*"member_id":"\([0-9]*\)".*/\1/p' || true
}

member_ok() { # N: member N is alive and it is what answers on its client port
    local id
    alive "$1" || return 1
    id="$(own_id "$1")"
    [ -n "$id" ] && [ "$(serving_id "$1")" = "$id" ]
}

ours() { # every member is alive and answers on its own client port
    local n
    for n in 1 2 3; do member_ok "$n" || return 1; done
}

# N TENTHS: waits up to TENTHS/10 s for member N to serve, as itself and healthy; fails at
# once if it exits.
wait_member() {
    local _
    for _ in $(seq 1 "$2"); do
        alive "$1" || return 1
        member_ok "$1" && member_healthy "$1" && return 0
        sleep 0.1
    done
    return 1
}

last_error() { # N: the last error member N logged
    grep -o '"error":"[^"]*"' "$dir/m$1.log" 2>/dev/null | tail -n 1 || true
}

fail_restart() { # N REASON: says why, stops what it started of member N
    echo "m$1 did not restart: $2; $dir/m$1.log ends: $(last_error "$1")" >&2
    if alive "$1"; then kill -9 "$(cat "$dir/m$1.pid")" 2>/dev/null || true; fi
    exit 1
}

kill_members() { # TERM, then KILL, the members of the pid files
    local n
    for n in 1 2 3; do
        if [ -f "$dir/m$n.pid" ]; then kill "$(cat "$dir/m$n.pid")" 2>/dev/null || true; fi
    done
    sleep 0.3
    for n in 1 2 3; do
        if [ -f "$dir/m$n.pid" ]; then kill -9 "$(cat "$dir/m$n.pid")" 2>/dev/null || true; fi
    done
}

fail_start() { # REASON: says why and what the members logged, stops them, keeps the logs
    local n state last
    {
        echo "etcd cluster did not start in $dir: $1"
        for n in 1 2 3; do
            if alive "$n"; then state=running; else state=exited; fi
            # The last error the member logged, if any, else the end of its log.
            last="$(last_error "$n")"
            echo "  m$n $state; $dir/m$n.log ends: ${last:-$(tail -n 1 "$dir/m$n.log" 2>/dev/null || true)}"
        done
        if grep -qs 'address already in use' "$dir"/m*.log; then
            echo "Ports $(client_port 1)-$(client_port 3) or $(peer_port 1)-$(peer_port 3) are taken (another cluster?):"
            echo "stop it, or choose other ports with KVS_ETCD_PORT_BASE (now $base)."
        fi
    } >&2
    kill_members
    rm -rf "$dir"/m[123] "$dir"/m[123].pid
    exit 1
}

case "${1:-}" in
start)
    if alive 1; then
        if [ "$(cat "$dir/port-base" 2>/dev/null)" != "$base" ]; then
            echo "a cluster already runs in $dir, on ports from base $(cat "$dir/port-base" 2>/dev/null || echo '?'), not $base" >&2
            exit 1
        fi
        echo "already running in $dir"; exit 0
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    echo "$base" >"$dir/port-base"
    case "${2:-}" in
    --tls) command -v openssl >/dev/null || { echo "start --tls needs openssl" >&2; exit 2; }
        touch "$dir/secure"; make_tls ;;
    '') ;;
    *) echo "usage: $0 start [--tls]" >&2; exit 2 ;;
    esac
    # A token of its own: a cluster this start did not create has other member IDs.
    token="kvs-test-$(date +%s%N)-$$"
    for n in 1 2 3; do start_member "$n" new "$token"; done
    up=
    for _ in $(seq 1 150); do
        for n in 1 2 3; do
            alive "$n" || fail_start "member m$n exited"
        done
        if healthy && ours; then up=1; break; fi
        sleep 0.1
    done
    if [ -z "$up" ]; then
        if healthy; then
            fail_start "the members answering on ports $(client_port 1)-$(client_port 3) are not the ones it started"
        fi
        fail_start "it did not become healthy within 15 s"
    fi
    if secure; then
        enable_auth
        echo "etcd cluster up in $dir, over TLS with auth: $("$0" url)"
        echo "the kvs user's password: eval \"\$($0 env)\" exports it (KVS_ETCD_PASSWORD)"
    else
        echo "etcd cluster up in $dir: etcd://$endpoints/PREFIX"
    fi
    ;;
restart)
    n="${2:?member number}"
    case "$n" in 1 | 2 | 3) ;; *) echo "no member $n: members are 1, 2 and 3" >&2; exit 2 ;; esac
    if member_ok "$n"; then echo "m$n is running"; exit 0; fi
    old="$(own_id "$n")"
    start_member "$n" existing
    if wait_member "$n" 150; then echo "m$n restarted"; exit 0; fi
    alive "$n" && fail_restart "$n" "it did not answer as itself within 15 s"
    case "$(last_error "$n")" in
    *'"wal: '*) ;; # e.g. etcd 3.4 cannot replay a WAL entry over 10 MiB (the suite's 16 MiB values)
    *) fail_restart "$n" "it exited" ;;
    esac
    # It cannot start from its write-ahead log: replace it with an empty member of the same
    # name and URLs, which catches up from a snapshot of the leader.
    via=
    for m in 1 2 3; do
        if [ "$m" != "$n" ] && member_ok "$m"; then via="$m"; break; fi
    done
    if [ -z "$via" ] || [ -z "$old" ]; then
        fail_restart "$n" "it cannot read its WAL, and no other member can replace it"
    fi
    echo "m$n cannot read its WAL ($(last_error "$n")): replacing it with an empty member"
    if secure; then # membership changes need root
        root_token="$(member_curl "$via" /v3/auth/authenticate "{\"name\":\"root\",\"password\":\"$(cat "$tls/root.password")\"}" \
            | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')" || true
        (umask 077 && printf 'Authorization: %s\n' "$root_token" >"$tls/root.header")
    fi
    member_curl "$via" /v3/cluster/member/remove "{\"ID\":\"$old\"}" >/dev/null \
        || fail_restart "$n" "could not remove member $old through m$via"
    member_curl "$via" /v3/cluster/member/add "{\"peerURLs\":[\"$(scheme)://127.0.0.1:$(peer_port "$n")\"]}" >/dev/null \
        || fail_restart "$n" "removed it, but could not add it back through $via"
    rm -rf "${dir:?}/m$n"
    start_member "$n" existing
    wait_member "$n" 300 || fail_restart "$n" "its empty replacement did not answer as itself within 30 s"
    echo "m$n replaced: a new member, caught up from the leader"
    ;;
url)
    if secure; then
        echo "etcds://$endpoints/PREFIX?ca=$tls/ca.pem&cert=$tls/client.pem&key=$tls/client-key.pem&user=kvs"
    else
        echo "etcd://$endpoints"
    fi
    ;;
env)
    if secure; then
        echo "export KVS_ETCD_PASSWORD=$(cat "$tls/kvs.password")"
    else
        echo "# $dir runs without auth: no password"
    fi
    ;;
status)
    for n in 1 2 3; do
        printf 'm%s 127.0.0.1:%s ' "$n" "$(client_port "$n")"
        member_curl "$n" /v3/maintenance/status '{}' || printf 'down'
        echo
    done
    ;;
stop)
    kill_members
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start [--tls]|url|env|status|restart N|stop" >&2; exit 2
    ;;
esac
