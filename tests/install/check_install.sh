#!/bin/sh
# Install the build into a staging root and build a tiny C program against the INSTALLED library
# using nothing but `pkg-config --cflags --libs nextgpt`, then run it.
# usage: check_install.sh BUILD_DIR SOURCE_DIR [B_SANITIZE]
# (a sanitized library needs the app built with the same -fsanitize, as any app linking it would)
set -eu
build=$1
src=$2
san=${3:-none}
extra=""
[ "$san" != none ] && extra="-fsanitize=$san"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
meson install -C "$build" --destdir "$root" --no-rebuild --quiet >/dev/null
pc=$(find "$root" -name nextgpt.pc | head -n 1)
[ -n "$pc" ] || { echo "nextgpt.pc was not installed"; exit 1; }
hdr=$(find "$root" -name nextgpt.h | head -n 1)
[ -n "$hdr" ] || { echo "nextgpt.h was not installed"; exit 1; }
n_hdr=$(find "$root" -name '*.h' | wc -l)
[ "$n_hdr" -eq 1 ] || { echo "expected exactly one installed header, found $n_hdr"; find "$root" -name '*.h'; exit 1; }
so=$(find "$root" -name 'libnextgpt.so.0' | head -n 1)
[ -n "$so" ] || { echo "libnextgpt.so.0 (soname link) was not installed"; exit 1; }
# The .pc file names the final prefix; the sysroot variable maps it into the staging root.
export PKG_CONFIG_PATH="$(dirname "$pc")"
export PKG_CONFIG_SYSROOT_DIR="$root"
flags=$(pkg-config --cflags --libs nextgpt)
echo "pkg-config: $flags"
cat > "$root/app.c" <<'C'
#include <nextgpt.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    ngpt_context_params p;
    ngpt_context_params_default(&p, sizeof p);
    p.device = NGPT_DEVICE_CPU;
    ngpt_context *ctx = NULL;
    if (ngpt_context_create(&ctx, &p) != NGPT_OK) { printf("create: %s\n", ngpt_last_error()); return 1; }
    printf("libnextgpt %s on %s\n", ngpt_version(), ngpt_backend_name(ngpt_context_backend(ctx)));
    ngpt_context_free(ctx);
    return strcmp(ngpt_version(), NGPT_VERSION_STRING) != 0;
}
C
cc -std=c99 -Wall -Wextra -Werror $extra -o "$root/app" "$root/app.c" $flags
LD_LIBRARY_PATH="$(dirname "$so")" "$root/app"
# The Python package, where the build made one: every module of bindings/python/nextgpt and the
# generated _capi.py installed side by side (meson.build lists the modules by hand), and the
# installed package importable on the installed library (not under a sanitizer: python3 would
# need libasan preloaded).
if [ -f "$build/bindings/python/nextgpt/_capi.py" ]; then
    init=$(find "$root" -path '*/nextgpt/__init__.py' | head -n 1)
    [ -n "$init" ] || { echo "the Python package nextgpt was not installed"; exit 1; }
    pkg=$(dirname "$init")
    for f in "$src"/bindings/python/nextgpt/*.py _capi.py; do
        [ -f "$pkg/$(basename "$f")" ] || { echo "nextgpt/$(basename "$f") was not installed in $pkg"; exit 1; }
    done
    if [ "$san" = none ]; then
        py=$(command -v /usr/bin/python3 || command -v python3)
        LD_LIBRARY_PATH="$(dirname "$so")" NGPT_LIBRARY="$so" PYTHONPATH="$(dirname "$pkg")" "$py" -c '
import sys, nextgpt
assert nextgpt.__file__.startswith(sys.argv[1] + "/"), nextgpt.__file__
print("python: nextgpt %s, %d modules" % (nextgpt.version(), len([m for m in sys.modules if m.startswith("nextgpt.")])))
' "$pkg"
    fi
fi
