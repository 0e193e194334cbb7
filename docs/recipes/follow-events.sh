#!/bin/sh
# Print "unlocked" or "locked" on every change, from the kiosk's event
# stream. A broken stream is treated as locked, and it reconnects.
#
#   KIOSK=http://192.168.1.23:8080 sh follow-events.sh
KIOSK=${KIOSK:-http://127.0.0.1:8080}
while :; do
  curl -sN --max-time 3600 "$KIOSK/api/unlock/events" | while IFS= read -r line; do
    case "$line" in
      data:*'"unlocked":true'*) echo unlocked ;;
      data:*) echo locked ;;
    esac
  done
  echo locked
  sleep 1
done
