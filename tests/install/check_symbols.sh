#!/bin/sh
# The exported dynamic symbols of libnextgpt.so must be exactly the functions include/nextgpt.h
# declares with NGPT_API: nothing missing, nothing extra (no internal nx_*, no C++/CUDA symbols).
# usage: check_symbols.sh LIBNEXTGPT_SO NEXTGPT_H
set -eu
lib=$1
hdr=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVWiu]$/ {print $3}' | sed 's/@.*//' | sort -u > "$tmp/exported"
# declarations: "NGPT_API <type> <name>(" possibly with pointers; join continuation lines first
grep -v '^[[:space:]]*#' "$hdr" | tr '\n' ' ' | grep -o 'NGPT_API[^;(]*(' | sed 's/($//; s/.*[ *]//' | sort -u > "$tmp/declared"
status=0
if ! cmp -s "$tmp/exported" "$tmp/declared"; then
    echo "exported but not declared in nextgpt.h:"
    comm -23 "$tmp/exported" "$tmp/declared" | sed 's/^/  /'
    echo "declared in nextgpt.h but not exported:"
    comm -13 "$tmp/exported" "$tmp/declared" | sed 's/^/  /'
    status=1
fi
bad=$(grep -v '^ngpt_' "$tmp/exported" || true)
if [ -n "$bad" ]; then
    echo "exported symbols without the ngpt_ prefix:"; echo "$bad" | sed 's/^/  /'
    status=1
fi
n=$(wc -l < "$tmp/exported")
echo "$n exported symbols checked"
exit $status
