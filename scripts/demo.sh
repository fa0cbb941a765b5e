#!/usr/bin/env bash
# The README's run command: the whole chain on this machine.
# Installs what is missing, builds, starts a private Mosquitto on a free
# loopback port (from config/mosquitto/fieldlink.conf), the gateway writing an
# SQLite file and forwarding to an upstream (a second Mosquitto, or with
# --upstream postgres a private PostgreSQL), and simulated readers; shows what
# lands and what was forwarded until Ctrl-C or --seconds, and prints where the
# gateway's status page is.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<USAGE
usage: scripts/demo.sh [--seconds N] [--devices N] [--period MS] [--db PATH] [--upstream KIND]

  --seconds N   stop by itself after N seconds (default: run until Ctrl-C)
  --devices N   simulated readers to start (default 3)
  --period MS   sampling period of every channel in milliseconds (default 500)
  --db PATH     SQLite file the gateway writes (default build/demo/fieldlink.db;
                kept after the demo so you can query it with sqlite3)
  --upstream KIND   where the gateway forwards its readings: mqtt (default: a
                second private Mosquitto on another loopback port), postgres (a
                private PostgreSQL in build/demo/pg), or none
USAGE
}

seconds=0 devices=3 period=500 db="" upstream=mqtt
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --devices) devices="$2"; shift 2 ;;
    --period) period="$2"; shift 2 ;;
    --db) db="$2"; shift 2 ;;
    --upstream) upstream="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "demo: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
case "$upstream" in mqtt|postgres|none) ;; *) echo "demo: --upstream must be mqtt, postgres or none" >&2; exit 2 ;; esac
for n in "$seconds" "$devices" "$period"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "demo: '$n' is not a whole number" >&2; exit 2; }
done

scripts/setup.sh
echo "== building (build/release)"
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DFIELDLINK_BUILD_TESTS=OFF >/dev/null
cmake --build build/release -j "$(nproc)" --target fieldlink-gateway fieldlink-reader fieldlink
bin_gateway=build/release/bin/fieldlink-gateway
bin_reader=build/release/bin/fieldlink-reader

run=build/demo
mkdir -p "$run"
db=${db:-$run/fieldlink.db}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$run/mosquitto-data"
{ sed -e "s|^listener .*|listener $port 127.0.0.1|" config/mosquitto/fieldlink.conf
  echo "persistence_location $PWD/$run/mosquitto-data/"
  echo "user $(id -un)"; } >"$run/mosquitto.conf"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
stop() { [ -n "${1:-}" ] && { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }; }

readers=() broker_pid="" gateway_pid="" upstream_pid=""
cleanup() {
  trap - EXIT INT TERM
  echo
  echo "== stopping (readers drain first: every reading gets stored before they exit)"
  for pid in "${readers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${readers[@]}"; do wait "$pid" 2>/dev/null || true; done
  stop "$gateway_pid"; stop "$broker_pid"; stop "$upstream_pid"
  [ "$upstream" = postgres ] && python3 tests/integration/pg_harness.py stop "$run/pg" >/dev/null 2>&1
  show
  echo "== build/release/bin/fieldlink --db $db devices"
  build/release/bin/fieldlink --db "$db" devices || true
  echo "database kept: $db   logs: $run/*.log"
}

show() {
  sqlite3 -readonly -box "$db" "
    SELECT device, count(*) AS readings, max(seq) AS last_seq,
           sum(unix_ms IS NULL) AS unsynced FROM readings GROUP BY device ORDER BY device;
    SELECT r.device, r.channel, r.seq, round(r.value, 3) AS value,
           coalesce(strftime('%H:%M:%f', r.unix_ms / 1000.0, 'unixepoch'), 'mono ' || r.mono_ms) AS taken
      FROM readings r JOIN (SELECT device, channel, max(seq) AS seq FROM readings GROUP BY device, channel) l
        ON r.device = l.device AND r.seq = l.seq ORDER BY r.device, r.channel;
    SELECT h.device, h.held AS spooled, h.dropped, h.reconnects, h.acked_through
      FROM device_health h JOIN (SELECT device, max(id) AS id FROM device_health GROUP BY device) l
        ON h.id = l.id ORDER BY h.device;
    SELECT count(*) AS dead_letters FROM dead_letters;
    SELECT c.upstream, c.forwarded_rows AS forwarded, (SELECT count(*) FROM readings r WHERE r.id >= c.next_id
             AND NOT (c.live_from_id IS NOT NULL AND r.id >= c.live_from_id AND r.id < c.live_next_id)) AS lag,
           c.bytes_sent, strftime('%H:%M:%S', c.updated_unix_ms / 1000.0, 'unixepoch') AS moved
      FROM forward_cursors c ORDER BY c.upstream;" 2>/dev/null || echo "(no readings yet)"
}

trap cleanup EXIT INT TERM
mosquitto -c "$run/mosquitto.conf" >"$run/mosquitto.log" 2>&1 & broker_pid=$!
echo "== mosquitto on 127.0.0.1:$port"

# The gateway's config: the demo's broker and database, its status page on
# another free loopback port, and its upstream.
http_port=$(free_port)
{ echo '[gateway]'; echo 'id = "demo-gateway"'
  echo '[mqtt]'; echo "broker = \"tcp://127.0.0.1:$port\""; echo 'client_id = "fieldlink-demo-gateway"'
  echo '[database]'; echo "path = \"$db\""
  echo '[log]'; echo 'stats_interval_s = 10'
  echo '[http]'; echo 'enable = true'; echo 'address = "127.0.0.1"'; echo "port = $http_port"; } >"$run/gateway.toml"
case "$upstream" in
  mqtt)
    up_port=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$up_port" >"$run/upstream-mosquitto.conf"
    mosquitto -c "$run/upstream-mosquitto.conf" >"$run/upstream-mosquitto.log" 2>&1 & upstream_pid=$!
    printf '\n[[upstream]]\nname = "central"\nkind = "mqtt"\nuri = "tcp://127.0.0.1:%s"\n' "$up_port" >>"$run/gateway.toml"
    echo "== upstream: a second mosquitto on 127.0.0.1:$up_port (watch: mosquitto_sub -p $up_port -v -t 'fieldlink/v1/+/+/forward' -F '%t %l')" ;;
  postgres)
    conninfo=$(python3 tests/integration/pg_harness.py start "$run/pg")
    printf '\n[[upstream]]\nname = "central-db"\nkind = "postgres"\nconninfo = "%s"\n' "$conninfo" >>"$run/gateway.toml"
    echo "== upstream: PostgreSQL ($conninfo; table fieldlink_readings)" ;;
  none) echo "== no upstream" ;;
esac
sleep 0.5
"$bin_gateway" --config "$run/gateway.toml" >"$run/gateway.log" 2>&1 & gateway_pid=$!
echo "== gateway writing $db (config $run/gateway.toml, log $run/gateway.log)"
echo "== status page: http://127.0.0.1:$http_port/   metrics: http://127.0.0.1:$http_port/metrics   health: http://127.0.0.1:$http_port/healthz"
for i in $(seq 1 "$devices"); do
  dev=$(printf "demo-%02d" "$i")
  "$bin_reader" --device "$dev" --broker "127.0.0.1:$port" --period "$period" \
    --flash "$run/$dev.flash" --flash-sectors 256 --telemetry-interval 5 \
    >"$run/$dev.out" 2>"$run/$dev.log" & readers+=($!)
done
echo "== $devices readers sampling 3 channels every ${period} ms, spooling to $run/demo-NN.flash"

start=$(date +%s)
while :; do
  sleep 2
  echo "---- $(date +%T)"
  show
  if [ "$seconds" -gt 0 ] && [ $(( $(date +%s) - start )) -ge "$seconds" ]; then break; fi
done
