#!/bin/bash
# A real S3 server with object lock for development and tests: a single-node Ceph cluster
# (one monitor, one in-memory OSD) plus a RADOS Gateway, all bound to 127.0.0.1 only.
#
# usage: scripts/ceph-rgw.sh start|stop|rgw-stop|rgw-start
#   start      create a fresh cluster in $DIR and start mon, osd and radosgw (about 15 s)
#   stop       stop radosgw, osd and mon (the PIDs written under $DIR/run)
#   rgw-stop   stop the gateway process only (the cluster keeps running; for fault tests)
#   rgw-start  start the gateway again on the same cluster
#
# environment: DIR (state, default /tmp/bwv-ceph), RGW_PORT (S3 endpoint, default 7480),
#   MON_PORT (monitor msgr v1 port, default 6789; msgr v2 uses MON_PORT2, default 3300),
#   AK / SK (the S3 access and secret key of the "evidence" user), MEMSTORE_BYTES (OSD size,
#   default 8 GiB of memory at most), VERBOSE (print timings).
#
# The cluster runs without cephx authentication and keeps its data in memory: it is for
# loopback use only, never for evidence. Client: Minio("127.0.0.1:$RGW_PORT", AK, SK,
# secure=False, region="us-east-1").
set -euo pipefail
DIR=${DIR:-/tmp/bwv-ceph}
RGW_PORT=${RGW_PORT:-7480}
MON_PORT=${MON_PORT:-6789}
MON_PORT2=${MON_PORT2:-3300}
AK=${AK:-evidence-ak}
SK=${SK:-evidence-sk-0123456789}
export CEPH_CONF=$DIR/ceph.conf
t0=$(date +%s.%N)

ts() {
  if [ -n "${VERBOSE:-}" ]; then
    echo "  +$(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5)s $*" >&2
  fi
}

rgw_up() {
  curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$RGW_PORT/"
}

wait_rgw() {
  for _ in $(seq 1 600); do
    if rgw_up; then return 0; fi
    sleep 0.1
  done
  echo "radosgw did not answer on 127.0.0.1:$RGW_PORT within 60 s" >&2
  tail -n 20 "$DIR/log/client.rgw.log" >&2 || true
  return 1
}

stop_pid() {  # stop the daemon whose pid file is $DIR/run/$1.pid, waiting up to 10 s
  local f=$DIR/run/$1.pid p
  [ -f "$f" ] || return 0
  p=$(cat "$f")
  kill "$p" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$p" 2>/dev/null || true
  rm -f "$f"
}

start_rgw() {
  radosgw -n client.rgw -k "$DIR/keyring"
  ts radosgw-returned
  wait_rgw
  ts rgw-http-up
}

case "${1:-}" in
start)
  if rgw_up || ss -ltn | grep -qE "127\.0\.0\.1:($MON_PORT|$MON_PORT2) "; then
    echo "already running, or port $RGW_PORT / $MON_PORT / $MON_PORT2 busy" >&2
    exit 1
  fi
  rm -rf "$DIR"
  mkdir -p "$DIR"/{mon,osd,run,log}
  cat >"$CEPH_CONF" <<CONF
[global]
fsid = $(cat /proc/sys/kernel/random/uuid)
mon host = [v2:127.0.0.1:$MON_PORT2,v1:127.0.0.1:$MON_PORT]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon warn on pool no redundancy = false
[mon]
mon data = $DIR/mon
mon data avail crit = 0
mon allow pool delete = true
[mon.a]
public addr = [v2:127.0.0.1:$MON_PORT2,v1:127.0.0.1:$MON_PORT]
[osd]
osd data = $DIR/osd
osd objectstore = memstore
memstore device bytes = ${MEMSTORE_BYTES:-8589934592}
osd class load list = *
osd class default list = *
[client.rgw]
# without this radosgw 16 hangs at start-up
ms mon client mode = crc
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw dns name = localhost
CONF
  ts conf
  ceph-mon --id a --mkfs --keyring /dev/null
  touch "$DIR/mon/keyring"
  ceph-mon --id a
  ts mon-started
  OSD_ID=$(ceph osd create)
  ceph osd crush add "osd.$OSD_ID" 1 root=default host=localhost >/dev/null 2>&1 ||
    ceph osd crush add "osd.$OSD_ID" 1 root=default
  ceph-osd --id "$OSD_ID" --mkfs >/dev/null 2>&1
  ceph-osd --id "$OSD_ID"
  echo "$OSD_ID" >"$DIR/run/osd-id"
  ts osd-started
  ceph auth get-or-create client.rgw osd 'allow rwx' mon 'allow rw' -o "$DIR/keyring"
  start_rgw
  radosgw-admin user create --uid evidence --display-name evidence \
    --access-key "$AK" --secret-key "$SK" >/dev/null
  ts user-created
  echo "rgw up on http://127.0.0.1:$RGW_PORT  ak=$AK sk=$SK"
  ;;
stop)
  stop_pid client.rgw
  stop_pid "osd.$(cat "$DIR/run/osd-id" 2>/dev/null || echo 0)"
  stop_pid mon.a
  ;;
rgw-stop)
  stop_pid client.rgw
  ;;
rgw-start)
  if rgw_up; then
    echo "port $RGW_PORT already answers" >&2
    exit 1
  fi
  start_rgw
  ;;
*)
  echo "usage: $0 start|stop|rgw-stop|rgw-start" >&2
  exit 2
  ;;
esac
