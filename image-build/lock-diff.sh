#!/usr/bin/env bash
# Compares two package locks ("name version" lines, `#` comments): prints one line per package
# that moved, came or went, as `name: OLD -> NEW` (`-` where it is absent). Exit status 0 when
# the two pin the same set, 1 when they differ, 2 on a usage error.
#   image-build/lock-diff.sh OLD_LOCK NEW_LOCK
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 OLD_LOCK NEW_LOCK" >&2; exit 2; }
for lock in "$1" "$2"; do
  [ -r "$lock" ] || { echo "lock-diff: cannot read $lock" >&2; exit 2; }
done
export LC_ALL=C
entries() { grep -v '^\s*#' "$1" | awk 'NF >= 2 {print $1, $2}' | sort -u; }
changes=$(join -a 1 -a 2 -e - -o 0,1.2,2.2 <(entries "$1") <(entries "$2") |
  awk '$2 != $3 {printf "%s: %s -> %s\n", $1, $2, $3}')
[ -z "$changes" ] && exit 0
printf '%s\n' "$changes"
exit 1
