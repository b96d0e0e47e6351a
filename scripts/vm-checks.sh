# Sourced by the guest scenarios (scripts/vm-guest*.sh): how a check is recorded, the pings it
# asserts with, and how a host's daemon is started. Needs $results (the results file), $P (the
# namespaces' prefix), and for `start` $bin, $work and the array `pids`.

ok() { echo "ok $1" >> "$results"; }
fail() { echo "FAIL $1: $2" >> "$results"; }
check() { # check NAME WHAT COMMAND...: ok if the command succeeds
    local name=$1 what=$2
    shift 2
    if "$@"; then ok "$name"; else fail "$name" "$what"; fi
}
pings() { # pings NS ADDR COUNT: exactly COUNT of COUNT echo requests answered
    local said
    said=$(ip netns exec "$P-$1" ping -c "$3" -i 0.5 -W 5 "$2" 2>&1)
    echo "$said"
    grep -q " $3 received" <<< "$said"
}
silent() { # silent NS ADDR: 2 requests, none answered
    local said
    said=$(ip netns exec "$P-$1" ping -c 2 -i 0.5 -W 2 "$2" 2>&1)
    echo "$said"
    grep -q " 0 received" <<< "$said"
}
within() { # within SECONDS COMMAND...: the command succeeds within SECONDS (tried every 0.1 s)
    local tries=$(($1 * 10))
    shift
    for _ in $(seq "$tries"); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}
start() { # start HOST LOG: the daemon of host HOST (config $work/hHOST.toml), logging to LOG; 0 once it is running
    local i=$1 log=$2
    ip netns exec $P-h$i "$bin" run --config "$work/h$i.toml" --summary-every 0 --control "$work/h$i.sock" \
        > "$log" 2>&1 &
    pids[$i]=$!
    for _ in $(seq 600); do
        grep -q "xvtep: running" "$log" && return 0
        kill -0 "${pids[$i]}" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
