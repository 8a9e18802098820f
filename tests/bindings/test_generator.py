#!/usr/bin/python3
"""The Python binding generator (tools/gen_python_bindings.py).

1. The functions of the generated nextgpt/_capi.py == the NGPT_API functions of
   include/nextgpt.h (read independently, by text) == the functions libnextgpt.so exports.
2. Every generated struct has the C compiler's size and field offsets (a C program printing
   sizeof/offsetof is generated from the module, compiled with cc and compared).
3. A synthetic header with every construct the generator promises (opaque typedefs, enums with
   explicit and implicit values and expressions, unsigned hex #defines, expressions over other
   macros, strings, fixed arrays sized by a macro, nested structs by value, unions, function
   pointer typedefs with bool, const char * returns, out-pointer parameters) round-trips.

usage: test_generator.py SOURCE_ROOT BUILD_ROOT LIBNEXTGPT_SO
"""
import ctypes
import importlib.util
import os
import re
import subprocess
import sys
import tempfile

src, build, so = sys.argv[1:4]
header = os.path.join(src, "include", "nextgpt.h")
gen = os.path.join(src, "tools", "gen_python_bindings.py")
cc = os.environ.get("CC", "cc")
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


capi = load_module(os.path.join(build, "bindings", "python", "nextgpt", "_capi.py"), "_capi")

# ---- 1. three views of the function list ------------------------------------------------
text = re.sub(r"/\*.*?\*/", " ", open(header).read(), flags=re.S)
text = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
declared = set(re.findall(r"NGPT_API[^;(]*?\b(ngpt_\w+)\s*\(", text.replace("\n", " ")))
nm = subprocess.run(["nm", "-D", "--defined-only", so], stdout=subprocess.PIPE, check=True,
                    universal_newlines=True).stdout
exported = {l.split()[2].split("@")[0] for l in nm.splitlines()
            if len(l.split()) == 3 and l.split()[1] in "TDBRVWiu"}
generated = set(capi.FUNCTIONS)
check(len(declared) > 0, "the header declares %d NGPT_API functions" % len(declared))
check(generated == declared, "generated functions == header declarations (%d); missing %s, extra %s"
      % (len(generated), sorted(declared - generated), sorted(generated - declared)))
check(generated == exported, "generated functions == libnextgpt.so exports; not exported %s, not generated %s"
      % (sorted(generated - exported), sorted(exported - generated)))
lib = ctypes.CDLL(so)
check(capi.bind(lib) == [], "bind() finds every function in the library")

# constants: every object-like NGPT_ macro of the header is generated
macros = set(re.findall(r"^\s*#\s*define\s+(NGPT_\w+)[ \t]+\S", open(header).read(), flags=re.M))
macros -= {"NGPT_API"}
check(macros <= set(dir(capi)), "every #define NGPT_* constant is generated; missing %s"
      % sorted(macros - set(dir(capi))))
enumerators = set(re.findall(r"^\s*(NGPT_\w+)\s*=", text, flags=re.M))
check(enumerators <= set(dir(capi)), "every enumerator is generated; missing %s"
      % sorted(enumerators - set(dir(capi))))


# ---- 2. struct layouts against the C compiler ---------------------------------------------
def layout_check(mod, hdr, label):
    lines = ['#include "%s"' % hdr, "#include <stdio.h>", "#include <stddef.h>", "int main(void) {"]
    expect = []
    for s in mod.STRUCTS:
        if s.startswith("_anon"):
            continue
        cls = getattr(mod, s)
        lines.append('printf("%%zu\\n", sizeof(%s));' % s)
        expect.append(ctypes.sizeof(cls))
        for f, _ in cls._fields_:
            lines.append('printf("%%zu\\n", offsetof(%s, %s));' % (s, f))
            expect.append(getattr(cls, f).offset)
    lines.append("return 0; }")
    with tempfile.TemporaryDirectory() as d:
        c = os.path.join(d, "layout.c")
        with open(c, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        subprocess.run([cc, "-std=c11", "-o", os.path.join(d, "layout"), c], check=True)
        got = [int(x) for x in subprocess.run([os.path.join(d, "layout")], stdout=subprocess.PIPE,
                                             check=True, universal_newlines=True).stdout.split()]
    check(got == expect, "%s: sizeof/offsetof of %d structs match the C compiler" % (label, len(mod.STRUCTS)))


layout_check(capi, header, "nextgpt.h")

# ---- 3. a synthetic header with every construct ---------------------------------------------
SYNTH = r"""
#ifndef SYNTH_H
#define SYNTH_H
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#if defined(__GNUC__)
#  define NGPT_API __attribute__((visibility("default")))
#else
#  define NGPT_API
#endif
#define NGPT_A 3
#define NGPT_B (NGPT_A * 100 + 7)
#define NGPT_HEX 0x10u
#define NGPT_BIG 0xFFFFFFFFull
#define NGPT_SHIFT (1u << 5)
#define NGPT_NEG (-42)
#define NGPT_STR "a\tb"
#define NGPT_F 0.5f
#define NGPT_MACRO_FN(x) ((x) + 1)
typedef struct ngpt_thing ngpt_thing; /* opaque */
typedef enum ngpt_color { NGPT_RED = -2, NGPT_GREEN, NGPT_BLUE = NGPT_A << 2, NGPT_LAST } ngpt_color;
enum { NGPT_ANON_X = 7 };
typedef bool (*ngpt_progress_fn)(float done, void *user_data);
typedef struct ngpt_inner { uint8_t a; double b; } ngpt_inner;
typedef union ngpt_u { int32_t i; float f; } ngpt_u;
typedef struct ngpt_outer {
    size_t struct_size;
    ngpt_inner inner;
    int64_t shape[NGPT_A + 1];
    ngpt_u u;
    ngpt_progress_fn progress;
    const char *name;
    struct ngpt_outer *next;
    void (*raw_cb)(int32_t, const char *);
    ngpt_color color;
} ngpt_outer;
NGPT_API const char *ngpt_name(const ngpt_thing *t);
NGPT_API int32_t ngpt_make(ngpt_thing **out, const ngpt_outer *p, uint64_t flags);
NGPT_API void ngpt_get(const ngpt_thing *t, const int64_t **v, size_t *n);
NGPT_API ngpt_color ngpt_color_of(ngpt_thing *t, ngpt_progress_fn cb, void *user);
NGPT_API void ngpt_noargs(void);
NGPT_API int32_t ngpt_arr(const int64_t shape[NGPT_A], const char *const *names);
#endif
"""
with tempfile.TemporaryDirectory() as d:
    h = os.path.join(d, "synth.h")
    with open(h, "w") as fh:
        fh.write(SYNTH)
    out = os.path.join(d, "synth_capi.py")
    r = subprocess.run([sys.executable, gen, "--cc", cc, h, out], stderr=subprocess.PIPE, universal_newlines=True)
    check(r.returncode == 0, "the generator accepts the synthetic header " + r.stderr.strip())
    if r.returncode == 0:
        m = load_module(out, "synth_capi")
        check((m.NGPT_A, m.NGPT_B, m.NGPT_HEX, m.NGPT_BIG, m.NGPT_SHIFT, m.NGPT_NEG, m.NGPT_STR, m.NGPT_F)
              == (3, 307, 16, 0xFFFFFFFF, 32, -42, "a\tb", 0.5), "#define constants (hex, suffixes, expressions, strings, floats)")
        check(not hasattr(m, "NGPT_MACRO_FN") and not hasattr(m, "NGPT_API"), "function-like and empty macros skipped")
        check(m.ENUMS["ngpt_color"] == {"NGPT_RED": -2, "NGPT_GREEN": -1, "NGPT_BLUE": 12, "NGPT_LAST": 13}
              and m.NGPT_ANON_X == 7, "enums: explicit, implicit, expression values, anonymous")
        check(m.OPAQUE == ["ngpt_thing"], "opaque typedef")
        o = m.ngpt_outer
        check([f for f, _ in o._fields_] == ["struct_size", "inner", "shape", "u", "progress", "name", "next",
                                             "raw_cb", "color"], "struct fields in order")
        check(o.shape.size == 4 * 8 and dict(o._fields_)["inner"] is m.ngpt_inner
              and issubclass(m.ngpt_u, ctypes.Union), "fixed array sized by a macro, nested struct, union")
        cb = m.ngpt_progress_fn(lambda done, user: True)
        check(cb is not None and m.ngpt_progress_fn._restype_ is ctypes.c_bool
              and m.ngpt_progress_fn._argtypes_ == (ctypes.c_float, ctypes.c_void_p), "bool callback typedef")
        f = m.FUNCTIONS
        check(f["ngpt_name"][0] is ctypes.c_char_p, "const char * return")
        check(f["ngpt_make"][1][0] == ctypes.POINTER(ctypes.POINTER(m.ngpt_thing))
              and f["ngpt_get"][1][1] == ctypes.POINTER(ctypes.POINTER(ctypes.c_int64))
              and f["ngpt_get"][1][2] == ctypes.POINTER(ctypes.c_size_t), "out-pointer parameters")
        check(f["ngpt_arr"][1] == [ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_char_p)],
              "array parameters decay to pointers; const char *const *")
        check(f["ngpt_color_of"][0] is m.ngpt_color and f["ngpt_noargs"] == (None, [], []), "enum return, (void)")
        layout_check(m, h, "synthetic header")
    bad = os.path.join(d, "bad.h")
    with open(bad, "w") as fh:
        fh.write("typedef struct ngpt_b { unsigned x : 3; } ngpt_b;\n")
    r = subprocess.run([sys.executable, gen, "--cc", cc, bad, out], stderr=subprocess.PIPE, universal_newlines=True)
    check(r.returncode != 0 and "bit-field" in r.stderr, "an unsupported construct is an error, not an omission")

print("%d failed" % len(failures))
sys.exit(1 if failures else 0)
