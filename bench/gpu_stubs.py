#!/usr/bin/env python3
"""gpu_stubs.py — stand-in shared libraries for the media codecs, for GPU runs on a bare machine.

The device machines lent through the `device` tool are bare Ubuntu images with nothing to install
from, and the dependency closure of Debian's libavcodec alone is ~200 MB (x265, codec2, rsvg, ...),
more than a run may carry. The GPU checks do not decode or encode media, so each codec library that
the carried binaries link directly is replaced by a library with the same SONAME and symbol versions
whose functions print their name and fail hard. A golden case that reaches one shows up as a crash
naming the function, never as a silent pass.

usage: gpu_stubs.py OUTDIR BINARY... (the binaries whose media imports are stubbed)
"""
import os
import re
import subprocess
import sys

# libjpeg, libturbojpeg and libpng16 travel as they are (under 1 MB each, nothing beyond libc and
# zlib): the pipeline's memory turn on the GPU reads a JPEG and writes a PNG.
STUBBED = ("libavformat", "libavcodec", "libavutil", "libswscale", "libsndfile")


def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def dynsyms(path, defined):
    """name -> version of the dynamic function symbols of PATH (defined or undefined ones)."""
    out = {}
    for line in run("objdump", "-T", path).splitlines():
        m = re.match(r"^[0-9a-f]+ .{7} (\S+)\s+[0-9a-f]+\s+(\(?[^\s)]+\)?)\s+(\S+)$", line)
        if not m:
            continue
        section, ver, name = m.groups()
        if (section == "*UND*") == defined:
            continue
        out[name] = ver.strip("()")
    return out


def main():
    outdir, bins = sys.argv[1], sys.argv[2:]
    os.makedirs(outdir, exist_ok=True)
    wanted = {}
    for b in bins:
        wanted.update(dynsyms(b, defined=False))
    libs = {}
    for line in run("ldd", bins[0]).splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].startswith(STUBBED):
            libs[parts[0]] = parts[2]
    for soname, real in sorted(libs.items()):
        have = dynsyms(real, defined=True)
        syms = {n: v for n, v in have.items() if n in wanted and v == wanted[n]}
        by_ver = {}
        for n, v in syms.items():
            by_ver.setdefault(v, []).append(n)
        src = os.path.join(outdir, soname + ".c")
        ver = os.path.join(outdir, soname + ".map")
        with open(src, "w") as f:
            f.write("#include <stdio.h>\n#include <stdlib.h>\n")
            f.write("static void die(const char *f) { fprintf(stderr, \"gpu_stubs: %s of " + soname +
                    " called: media codecs are stubbed on this GPU run\\n\", f); abort(); }\n")
            for n in sorted(syms):
                f.write("void %s(void) { die(\"%s\"); }\n" % (n, n))
        with open(ver, "w") as f:
            for v, names in sorted(by_ver.items()):
                if v == "Base":
                    continue
                f.write("%s { global: %s; };\n" % (v, "; ".join(sorted(names))))
        cmd = ["gcc", "-shared", "-fPIC", "-o", os.path.join(outdir, soname), src, "-Wl,-soname," + soname]
        if any(v != "Base" for v in by_ver):
            cmd.append("-Wl,--version-script=" + ver)
        subprocess.run(cmd, check=True)
        os.remove(src)
        os.remove(ver)
        print("stub %-22s %3d functions (real: %s)" % (soname, len(syms), real))


if __name__ == "__main__":
    main()
