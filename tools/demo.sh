#!/usr/bin/env bash
# `just demo`: the live appliance on the test video. Starts a real RTSP server on 127.0.0.1
# serving ../shared/testdata/video/faces_720p.mp4 (again on each reconnect), enrols the video's
# people but three into a `demo` watchlist of a fresh data directory, and runs the daemon with
# events printed as they arrive. Ctrl-C stops everything.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
testdata=${VIGIL_TESTDATA:-$root/../shared/testdata}
vigil="$root/target/release/vigil"
video="$testdata/video/faces_720p.mp4"
truth="$testdata/video/faces_720p.groundtruth.csv"
if [ ! -f "$video" ] || [ ! -f "$truth" ]; then
  echo "demo: the test data is missing: $video (see ../shared/testdata/README.md)" >&2
  exit 1
fi
data="$root/.deps/demo-data"
rm -rf "$data"; mkdir -p "$data/enrol"
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
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
read -r _ url <"$fifo"
echo "demo: RTSP server at $url" >&2
cat >"$data/vigil.toml" <<TOML
[[camera]]
id = "demo"
name = "Test video"
url = "$url"
fps = 5
mode = "both"
TOML
"$vigil" --data-dir "$data" run --config "$data/vigil.toml" --events text
