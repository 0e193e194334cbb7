#!/bin/sh
# Record while the consent kiosk allows it, and stop the moment it locks.
#
#   KIOSK=http://192.168.1.23:8080 sh record-while-unlocked.sh
#
# RECORD_CMD is a command that records until it gets SIGTERM (ffmpeg
# finishes its file properly on SIGTERM). No answer from the kiosk counts
# as locked.
KIOSK=${KIOSK:-http://127.0.0.1:8080}
OUT=${OUT:-lecture-$(date +%Y%m%d-%H%M%S).mkv}
RECORD_CMD=${RECORD_CMD:-ffmpeg -hide_banner -loglevel error -f v4l2 -i /dev/video0 -f alsa -i default $OUT}

pid=
stop() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=
    echo "stopped recording"
  fi
}
trap 'stop; exit 0' INT TERM

seen=0
while :; do
  answer=$(curl -s --max-time 40 -w '\n%{http_code}' "$KIOSK/api/unlock?wait=30&seen=$seen")
  code=$(printf '%s\n' "$answer" | tail -n 1)
  json=$(printf '%s\n' "$answer" | head -n 1)
  # A recorder that died by itself is started again while unlocked.
  if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then pid=; fi
  if [ "$code" = 200 ]; then
    if [ -z "$pid" ]; then
      $RECORD_CMD &
      pid=$!
      echo "recording (pid $pid)"
    fi
  else
    stop
  fi
  version=$(printf '%s\n' "$json" | sed -n 's/.*"version":\([0-9]*\).*/\1/p')
  if [ -n "$version" ] && [ "$version" != "$seen" ]; then
    seen=$version
  else
    sleep 1 # no answer, or no change: do not hammer the kiosk
  fi
done
