#!/usr/bin/env bash
# `./just run [ARGS]`: the appliance daemon, `vigil run --events text ARGS`. With no ARGS and
# no camera configured in the data directory, there is nothing for the daemon to watch, so
# the built-in demo runs instead (tools/demo.sh: the test video, its people enrolled, its
# own data directory), named as a demo in the log and the web UI. A configuration file
# (`--config FILE`) or a camera added to the data directory runs the real appliance.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
vigil=${VIGIL_BIN:-$root/target/release/vigil}
if [ $# -gt 0 ]; then
  exec "$vigil" run --events text "$@"
fi
# The data directory `vigil` uses without --data-dir (appliance/src/cli/mod.rs).
if [ -n "${VIGIL_DATA_DIR:-}" ]; then data=$VIGIL_DATA_DIR
elif [ "$(id -u)" -eq 0 ]; then data=/var/lib/vigil
else data=${XDG_DATA_HOME:-$HOME/.local/share}/vigil
fi
cameras=$(python3 -c '
import json, sys
try:
    print(len(json.load(open(sys.argv[1])).get("cameras") or []))
except FileNotFoundError:
    print(0)
' "$data/settings.json")
if [ "$cameras" -gt 0 ]; then
  exec "$vigil" --data-dir "$data" run --events text
fi
echo "run: no configuration and no camera in $data: starting the built-in demo." >&2
echo "run: your own appliance: ./just run --config FILE (see README.md, the daemon's configuration)" >&2
exec "$root/tools/demo.sh"
