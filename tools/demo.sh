#!/usr/bin/env bash
# The built-in demo: the live appliance on the test video. `./just demo`, and `./just run`
# when nothing is configured (tools/run.sh). Starts a real RTSP server on 127.0.0.1 serving
# ../shared/testdata/video/faces_720p.mp4 (again on each reconnect), enrols the video's
# people but three into a `demo` watchlist of a fresh data directory of its own (never the
# appliance's), and runs the daemon marked as a demo (`demo = true`: said in the log and on
# every web page), events printed as they arrive. Ctrl-C (or SIGTERM) stops everything.
#
# Environment: VIGIL_DEMO_DATA (default .deps/demo-data; emptied at each start),
# VIGIL_DEMO_ONVIF (default 127.0.0.1:8080), VIGIL_DEMO_WEB (default 127.0.0.1:8443),
# VIGIL_TESTDATA (default ../shared/testdata), VIGIL_BIN (default target/release/vigil).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
testdata=${VIGIL_TESTDATA:-$root/../shared/testdata}
vigil=${VIGIL_BIN:-$root/target/release/vigil}
video="$testdata/video/faces_720p.mp4"
truth="$testdata/video/faces_720p.groundtruth.csv"
if [ ! -f "$video" ] || [ ! -f "$truth" ]; then
  echo "demo: the test data is missing: $video (see ../shared/testdata/README.md)" >&2
  exit 1
fi
data=${VIGIL_DEMO_DATA:-$root/.deps/demo-data}
onvif_listen=${VIGIL_DEMO_ONVIF:-127.0.0.1:8080}
web_listen=${VIGIL_DEMO_WEB:-127.0.0.1:8443}
# Only a directory this script made is emptied: a marker says so.
if [ -e "$data" ] && [ ! -e "$data/.vigil-demo" ]; then
  echo "demo: $data exists and is not a demo data directory; not touching it" >&2
  exit 1
fi
rm -rf "$data"; mkdir -p "$data/enrol"; : > "$data/.vigil-demo"
kept_out="Hugo_Chavez Laura_Bush Kit_Harington"

# Enrol two photos of each person in the video, never the one it shows.
tail -n +2 "$truth" | while IFS=, read -r _ _ identity file; do
  case "$identity" in NONFACE) continue ;; MULTI:*) people=${identity#MULTI:}; people=${people//+/ } ;; *) people=$identity ;; esac
  for person in $people; do
    case " $kept_out " in *" $person "*) continue ;; esac
    mkdir -p "$data/enrol/$person"
    ls "$testdata/faces/$person"/*.jpg | grep -vF "$(basename "$file")" | head -2 |
      while read -r photo; do ln -sf "$photo" "$data/enrol/$person/"; done
  done
done
"$vigil" --data-dir "$data" watchlist create demo >/dev/null
"$vigil" --data-dir "$data" enroll --watchlist demo --dir "$data/enrol"
echo "demo: not enrolled, so reported as unregistered: $kept_out" >&2

fifo="$data/rtsp.ready"; mkfifo "$fifo"
/usr/bin/python3 "$root/tools/rtsp_server.py" --file "$video" --port 0 >"$fifo" &
server=$! daemon=''
stop() { [ -z "$daemon" ] || kill -TERM "$daemon" 2>/dev/null || true; }
trap 'stop; kill "$server" 2>/dev/null || true' EXIT
read -r _ url <"$fifo"
echo "demo: RTSP server at $url" >&2
cat >"$data/vigil.toml" <<TOML
demo = true
[onvif]
listen = "$onvif_listen"
[web]
listen = "$web_listen"
[[camera]]
id = "demo"
name = "Demo: test video"
url = "$url"
fps = 5
mode = "both"
TOML
echo "demo: data in $data; log in at https://$web_listen/ as admin with the first password printed below" >&2
"$vigil" --data-dir "$data" run --config "$data/vigil.toml" --events text &
daemon=$!
trap stop INT TERM
# `wait` returns early when a trapped signal arrives: wait again until the daemon has ended,
# then exit with its status (bash keeps it for a last `wait`).
while kill -0 "$daemon" 2>/dev/null; do wait "$daemon" || true; done
status=0
wait "$daemon" || status=$?
exit "$status"
