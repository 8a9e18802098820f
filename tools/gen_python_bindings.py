#!/usr/bin/python3
"""Generate the ctypes module of the Python bindings (nextgpt/_capi.py) from include/nextgpt.h.

usage: gen_python_bindings.py HEADER OUTPUT.py [--cc CC]

How: the header is run through the C preprocessor (`cc -E -P -undef -nostdinc`) against a tiny
fake libc (stddef.h, stdint.h, stdbool.h written to a temporary folder; each standard type is a
typedef the generator recognises by name), so pycparser (Debian's python3-pycparser) never sees
the GNU extensions of the system headers; `-undef` leaves __GNUC__ undefined, so NGPT_API
expands to nothing. The #define constants come from `cc -E -dM` (every object-like NGPT_*
macro); each is expanded by the same preprocessor pass (`__ngpt_const_NAME = (NAME);` lines
appended to the translation unit) and evaluated from pycparser's AST, so hex, unsigned suffixes,
casts and expressions over other macros all work.

Emitted: every enum (a ctypes integer alias + its enumerators as module constants + ENUMS),
every struct/union (Structure/Union subclasses, opaque ones without _fields_), every function
pointer typedef (CFUNCTYPE), every ngpt_* function (FUNCTIONS: name -> (restype, argtypes,
argnames)) and bind(lib) that sets restype/argtypes on a loaded CDLL. A construct the generator
does not understand (bit-fields, unknown base types, K&R declarations) is an error, never a
silent omission.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

from pycparser import c_ast, c_parser

FAKE_LIBC = {
    "stddef.h": "typedef int size_t; typedef int ptrdiff_t; typedef int wchar_t;\n#define NULL ((void*)0)\n",
    "stdint.h": "".join("typedef int %s;\n" % t for t in (
        "int8_t", "int16_t", "int32_t", "int64_t", "uint8_t", "uint16_t", "uint32_t", "uint64_t",
        "intptr_t", "uintptr_t", "intmax_t", "uintmax_t")),
    "stdbool.h": "#define bool _Bool\n#define true 1\n#define false 0\n",
    "stdarg.h": "typedef int va_list;\n",
}

# C type (as a sorted tuple of specifier words, or a libc typedef name) -> ctypes expression
BASE_TYPES = {
    ("void",): None,
    ("char",): "ctypes.c_char", ("char", "signed"): "ctypes.c_byte", ("char", "unsigned"): "ctypes.c_ubyte",
    ("short",): "ctypes.c_short", ("int", "short"): "ctypes.c_short",
    ("short", "unsigned"): "ctypes.c_ushort", ("int", "short", "unsigned"): "ctypes.c_ushort",
    ("int",): "ctypes.c_int", ("signed",): "ctypes.c_int", ("int", "signed"): "ctypes.c_int",
    ("unsigned",): "ctypes.c_uint", ("int", "unsigned"): "ctypes.c_uint",
    ("long",): "ctypes.c_long", ("int", "long"): "ctypes.c_long",
    ("long", "unsigned"): "ctypes.c_ulong", ("int", "long", "unsigned"): "ctypes.c_ulong",
    ("long", "long"): "ctypes.c_longlong", ("int", "long", "long"): "ctypes.c_longlong",
    ("long", "long", "unsigned"): "ctypes.c_ulonglong", ("int", "long", "long", "unsigned"): "ctypes.c_ulonglong",
    ("float",): "ctypes.c_float", ("double",): "ctypes.c_double", ("double", "long"): "ctypes.c_longdouble",
    ("_Bool",): "ctypes.c_bool",
    ("size_t",): "ctypes.c_size_t", ("ptrdiff_t",): "ctypes.c_ssize_t", ("wchar_t",): "ctypes.c_wchar",
    ("int8_t",): "ctypes.c_int8", ("int16_t",): "ctypes.c_int16", ("int32_t",): "ctypes.c_int32",
    ("int64_t",): "ctypes.c_int64", ("uint8_t",): "ctypes.c_uint8", ("uint16_t",): "ctypes.c_uint16",
    ("uint32_t",): "ctypes.c_uint32", ("uint64_t",): "ctypes.c_uint64",
    ("intptr_t",): "ctypes.c_ssize_t", ("uintptr_t",): "ctypes.c_size_t",
    ("intmax_t",): "ctypes.c_int64", ("uintmax_t",): "ctypes.c_uint64",
    ("va_list",): "ctypes.c_void_p",
}
LIBC_TYPEDEFS = {k[0] for k in BASE_TYPES if len(k) == 1 and k[0].endswith("_t")} | {"va_list"}


class GenError(Exception):
    pass


def where(node):
    return " (%s)" % node.coord if getattr(node, "coord", None) else ""


def run(cmd, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, **kw)
    if p.returncode != 0:
        raise GenError("%s failed:\n%s" % (" ".join(cmd), p.stderr))
    return p.stdout


# ---- constant expressions -------------------------------------------------------------------

INT_RE = re.compile(r"^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)([uUlL]*)$")


def c_string(text):
    """Python str of a C string literal body (simple escapes; the header uses plain ASCII)."""
    body = text[1:-1]
    out = bytearray()
    i = 0
    esc = {"n": 10, "t": 9, "r": 13, "0": 0, "\\": 92, '"': 34, "'": 39, "a": 7, "b": 8, "f": 12, "v": 11}
    raw = body.encode("utf-8")
    while i < len(raw):
        c = raw[i]
        if c == 92 and i + 1 < len(raw):
            n = chr(raw[i + 1])
            if n == "x":
                m = re.match(rb"[0-9a-fA-F]+", raw[i + 2:])
                out.append(int(m.group(0), 16) & 0xFF)
                i += 2 + len(m.group(0))
                continue
            if n in "01234567":
                m = re.match(rb"[0-7]{1,3}", raw[i + 1:])
                out.append(int(m.group(0), 8) & 0xFF)
                i += 1 + len(m.group(0))
                continue
            out.append(esc.get(n, ord(n)))
            i += 2
            continue
        out.append(c)
        i += 1
    return out.decode("utf-8")


def evaluate(node, env):
    """Value of a constant expression (int, float or str). env: enumerator values."""
    if isinstance(node, c_ast.Constant):
        v = node.value
        if node.type == "string":
            return c_string(v)
        if node.type == "char":
            s = c_string('"' + v[1:-1] + '"')
            return ord(s) if len(s) == 1 else GenError("bad char constant %s" % v)
        if node.type in ("float", "double", "long double"):
            return float(v.rstrip("fFlL"))
        m = INT_RE.match(v)
        if not m:
            raise GenError("cannot read the constant %r%s" % (v, where(node)))
        d = m.group(1)
        return int(d, 16) if d[:2] in ("0x", "0X") else (int(d, 8) if len(d) > 1 and d[0] == "0" else int(d))
    if isinstance(node, c_ast.ID):
        if node.name in env:
            return env[node.name]
        raise GenError("unknown name %s in a constant expression%s" % (node.name, where(node)))
    if isinstance(node, c_ast.UnaryOp):
        v = evaluate(node.expr, env)
        ops = {"-": lambda x: -x, "+": lambda x: x, "~": lambda x: ~x, "!": lambda x: int(not x)}
        if node.op in ops:
            return ops[node.op](v)
        raise GenError("unsupported unary %s%s" % (node.op, where(node)))
    if isinstance(node, c_ast.BinaryOp):
        a, b = evaluate(node.left, env), evaluate(node.right, env)
        if isinstance(a, str) or isinstance(b, str):
            raise GenError("arithmetic on a string%s" % where(node))
        ops = {
            "+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
            "/": lambda: (int(a / b) if isinstance(a, int) and isinstance(b, int) else a / b),
            "%": lambda: a - b * int(a / b), "<<": lambda: a << b, ">>": lambda: a >> b,
            "&": lambda: a & b, "|": lambda: a | b, "^": lambda: a ^ b,
            "&&": lambda: int(bool(a) and bool(b)), "||": lambda: int(bool(a) or bool(b)),
            "==": lambda: int(a == b), "!=": lambda: int(a != b), "<": lambda: int(a < b),
            ">": lambda: int(a > b), "<=": lambda: int(a <= b), ">=": lambda: int(a >= b),
        }
        if node.op in ops:
            return ops[node.op]()
        raise GenError("unsupported operator %s%s" % (node.op, where(node)))
    if isinstance(node, c_ast.TernaryOp):
        return evaluate(node.iftrue if evaluate(node.cond, env) else node.iffalse, env)
    if isinstance(node, c_ast.Cast):
        v = evaluate(node.expr, env)
        names = tuple(sorted(getattr(node.to_type.type.type, "names", [])))
        if names and isinstance(v, (int, float)):
            ct = BASE_TYPES.get(names)
            if ct in ("ctypes.c_float", "ctypes.c_double"):
                return float(v)
            if ct is not None:
                import ctypes
                return int(eval(ct, {"ctypes": ctypes})(int(v)).value)
        return v
    raise GenError("not a constant expression: %s%s" % (type(node).__name__, where(node)))


# ---- the generator ----------------------------------------------------------------------------

class Generator:
    def __init__(self):
        self.typedefs = {}      # typedef name -> ctypes expression (str) for the alias line
        self.records = {}       # class name -> ("struct"|"union", [(field, ctype)] or None, coord)
        self.record_order = []
        self.tag_names = {}     # (kind, tag) -> class name
        self.enums = {}         # enum name -> [(enumerator, value)]
        self.enum_consts = {}   # enumerator -> value
        self.callbacks = {}     # typedef name -> CFUNCTYPE expression
        self.aliases = []       # (name, expr) in order: enum/int aliases and callbacks
        self.functions = {}     # name -> (restype, [argtypes], [argnames])
        self.constants = {}     # NGPT_* macro -> value
        self.anon = 0

    # type -> ctypes expression -------------------------------------------------------------
    def ctype(self, t, ctx, in_pointer=False):
        if isinstance(t, c_ast.TypeDecl):
            return self.ctype(t.type, ctx, in_pointer)
        if isinstance(t, c_ast.IdentifierType):
            names = tuple(sorted(t.names))
            if len(t.names) == 1 and t.names[0] in self.typedefs_known():
                return t.names[0]
            if names in BASE_TYPES:
                return BASE_TYPES[names]
            raise GenError("unknown type %s in %s%s" % (" ".join(t.names), ctx, where(t)))
        if isinstance(t, (c_ast.Struct, c_ast.Union)):
            return self.record(t, ctx)
        if isinstance(t, c_ast.Enum):
            return self.enum(t, None)
        if isinstance(t, c_ast.PtrDecl):
            inner = t.type
            # char * (const or not) -> c_char_p; void * -> c_void_p; function pointer -> CFUNCTYPE
            if isinstance(inner, c_ast.FuncDecl):
                return self.functype(inner, ctx)
            if isinstance(inner, c_ast.TypeDecl) and isinstance(inner.type, c_ast.IdentifierType):
                names = tuple(sorted(inner.type.names))
                if names == ("char",):
                    return "ctypes.c_char_p"
                if names == ("void",):
                    return "ctypes.c_void_p"
            target = self.ctype(inner, ctx, True)
            if target is None:
                return "ctypes.c_void_p"
            return "ctypes.POINTER(%s)" % target
        if isinstance(t, c_ast.ArrayDecl):
            if t.dim is None:
                return "ctypes.POINTER(%s)" % self.ctype(t.type, ctx, True)
            n = evaluate(t.dim, self.enum_consts)
            return "(%s * %d)" % (self.ctype(t.type, ctx), n)
        if isinstance(t, c_ast.FuncDecl):
            return self.functype(t, ctx)
        raise GenError("unsupported type construct %s in %s%s" % (type(t).__name__, ctx, where(t)))

    def typedefs_known(self):
        return self.typedefs

    def params(self, fd, ctx):
        types, names = [], []
        variadic = False
        for i, p in enumerate(fd.args.params if fd.args else []):
            if isinstance(p, c_ast.EllipsisParam):
                variadic = True
                continue
            if isinstance(p, c_ast.ID):
                raise GenError("K&R-style parameter in %s%s" % (ctx, where(p)))
            if isinstance(p, c_ast.Typename) and isinstance(p.type, c_ast.TypeDecl) and \
                    isinstance(p.type.type, c_ast.IdentifierType) and p.type.type.names == ["void"]:
                continue  # (void)
            pt = p.type
            if isinstance(pt, c_ast.ArrayDecl):  # a parameter declared as an array is a pointer
                pt = c_ast.PtrDecl([], pt.type, pt.coord)
            t = self.ctype(pt, "%s parameter %d" % (ctx, i + 1))
            if t is None:
                raise GenError("void parameter in %s%s" % (ctx, where(p)))
            types.append(t)
            names.append(p.name or "arg%d" % i)
        return types, names, variadic

    def functype(self, fd, ctx):
        res = self.ctype(fd.type, ctx + " result")
        types, _, _ = self.params(fd, ctx)
        return "ctypes.CFUNCTYPE(%s)" % ", ".join([res or "None"] + types)

    def record(self, s, ctx, typedef_name=None):
        kind = "struct" if isinstance(s, c_ast.Struct) else "union"
        name = self.tag_names.get((kind, s.name)) if s.name else None
        if name is None:
            name = typedef_name or s.name
            if name is None:
                self.anon += 1
                name = "_anon_%s_%d" % (kind, self.anon)
            if s.name:
                self.tag_names[(kind, s.name)] = name
        if name not in self.records:
            self.records[name] = (kind, None, s.coord)
            self.record_order.append(name)
        if s.decls is not None:
            fields = []
            for d in s.decls:
                if d.bitsize is not None:
                    raise GenError("bit-field %s.%s is not supported (STYLE: no bit-fields)%s"
                                   % (name, d.name, where(d)))
                fname = d.name
                if fname is None:  # anonymous struct/union member
                    self.anon += 1
                    fname = "_anon%d" % self.anon
                fields.append((fname, self.ctype(d.type, "%s.%s" % (name, fname))))
            self.records[name] = (kind, fields, s.coord)
        return name

    def enum(self, e, typedef_name):
        name = typedef_name or e.name
        if e.values is not None:
            vals = []
            nxt = 0
            for en in e.values.enumerators:
                v = evaluate(en.value, self.enum_consts) if en.value is not None else nxt
                self.enum_consts[en.name] = v
                vals.append((en.name, v))
                nxt = v + 1
            key = name or "_anon_enum_%d" % len(self.enums)
            self.enums[key] = vals
            if name and e.name and typedef_name and e.name != typedef_name:
                self.tag_names[("enum", e.name)] = typedef_name
        if name is None:
            return "ctypes.c_int"
        if name not in self.typedefs:
            vals = self.enums.get(name, [])
            lo = min([v for _, v in vals] or [0])
            hi = max([v for _, v in vals] or [0])
            base = "ctypes.c_int" if lo < 0 or hi <= 0x7FFFFFFF else "ctypes.c_uint"
            self.typedefs[name] = base
            self.aliases.append((name, base))
        return name

    # top level ---------------------------------------------------------------------------------
    def visit(self, ast):
        for ext in ast.ext:
            if isinstance(ext, c_ast.FuncDef):
                raise GenError("function definition %s in the header%s" % (ext.decl.name, where(ext)))
            if isinstance(ext, c_ast.Typedef):
                self.typedef(ext)
            elif isinstance(ext, c_ast.Decl):
                if ext.name and ext.name.startswith("__ngpt_const_"):
                    self.constants[ext.name[len("__ngpt_const_"):]] = evaluate(ext.init, self.enum_consts)
                elif isinstance(ext.type, c_ast.FuncDecl):
                    if ext.name.startswith("ngpt_"):
                        res = self.ctype(ext.type.type, ext.name + " result")
                        types, names, variadic = self.params(ext.type, ext.name)
                        self.functions[ext.name] = (res, types, names, variadic)
                elif isinstance(ext.type, (c_ast.Struct, c_ast.Union)):
                    self.record(ext.type, "struct")
                elif isinstance(ext.type, c_ast.Enum):
                    self.enum(ext.type, None)
                elif ext.name and ext.name.startswith("ngpt_"):
                    raise GenError("exported variable %s is not supported%s" % (ext.name, where(ext)))
            elif isinstance(ext, c_ast.Pragma):
                pass
            else:
                raise GenError("unsupported top-level %s%s" % (type(ext).__name__, where(ext)))

    def typedef(self, td):
        name = td.name
        if name in LIBC_TYPEDEFS:
            return  # from the fake libc: mapped by name
        t = td.type
        if isinstance(t, c_ast.TypeDecl) and isinstance(t.type, (c_ast.Struct, c_ast.Union)):
            cls = self.record(t.type, name, typedef_name=name)
            self.typedefs[name] = cls
            if cls != name:
                self.aliases.append((name, cls))
            return
        if isinstance(t, c_ast.TypeDecl) and isinstance(t.type, c_ast.Enum):
            self.enum(t.type, name)
            return
        if isinstance(t, c_ast.PtrDecl) and isinstance(t.type, c_ast.FuncDecl):
            expr = self.functype(t.type, name)
            self.callbacks[name] = expr
            self.typedefs[name] = expr
            self.aliases.append((name, expr))
            return
        expr = self.ctype(t, name)
        self.typedefs[name] = expr or "None"
        self.aliases.append((name, expr or "None"))

    # output ---------------------------------------------------------------------------------
    def emit(self, header_name):
        out = []
        w = out.append
        w('"""ctypes declarations of %s: GENERATED by tools/gen_python_bindings.py at build time.' % header_name)
        w("")
        w("Do not edit; do not import directly: use the `nextgpt` package (its __init__ loads the library")
        w('and calls bind()). Regenerated by the build whenever the header changes."""')
        w("import ctypes")
        w("")
        w("# ---- #define constants")
        for k in sorted(self.constants):
            w("%s = %r" % (k, self.constants[k]))
        w("")
        w("# ---- enumerators")
        for en, vals in self.enums.items():
            for k, v in vals:
                w("%s = %d" % (k, v))
        w("")
        w("ENUMS = {")
        for en, vals in self.enums.items():
            if not en.startswith("_anon"):
                w("    %r: {%s}," % (en, ", ".join("%r: %d" % kv for kv in vals)))
        w("}")
        w("")
        w("# ---- structs and unions (opaque ones have no _fields_)")
        for name in self.record_order:
            kind = self.records[name][0]
            w("class %s(ctypes.%s):" % (name, "Structure" if kind == "struct" else "Union"))
            w("    pass")
            w("")
        w("")
        w("# ---- type aliases (enums) and callbacks, in header order")
        # aliases may reference records (as pointers) and other aliases: header order is valid C order
        emitted_fields = set()
        alias_done = set()

        def emit_fields(name, stack=()):
            if name in emitted_fields:
                return
            kind, fields, _ = self.records[name]
            if fields is None:
                return
            for _, ct in fields:  # by-value members first
                for dep in re.findall(r"\b(\w+)\b", re.sub(r"ctypes\.POINTER\([^)]*\)", "", ct)):
                    if dep in self.records and dep != name and dep not in stack:
                        emit_fields(dep, stack + (name,))
            w("%s._fields_ = [" % name)
            for f, ct in fields:
                w("    (%r, %s)," % (f, ct))
            w("]")
            emitted_fields.add(name)

        for name, expr in self.aliases:
            if name in alias_done:
                continue
            alias_done.add(name)
            w("%s = %s" % (name, expr))
        w("")
        w("# ---- struct layouts")
        for name in self.record_order:
            emit_fields(name)
        w("")
        w("OPAQUE = %r" % sorted(n for n in self.record_order if self.records[n][1] is None))
        w("STRUCTS = %r" % [n for n in self.record_order if self.records[n][1] is not None])
        w("CALLBACKS = %r" % list(self.callbacks))
        w("")
        w("# ---- functions: name -> (restype, argtypes, argnames)")
        w("FUNCTIONS = {")
        for name, (res, types, names, variadic) in self.functions.items():
            w("    %r: (%s, [%s], %r)," % (name, res or "None", ", ".join(types), names))
        w("}")
        variadics = [n for n, f in self.functions.items() if f[3]]
        w("VARIADIC = %r" % variadics)
        w("")
        w("")
        w("def bind(lib):")
        w('    """Set restype/argtypes of every function on the loaded CDLL `lib`; returns the names')
        w('    the library does not export (an older library than this header)."""')
        w("    missing = []")
        w("    for name, (res, args, _) in FUNCTIONS.items():")
        w("        try:")
        w("            f = getattr(lib, name)")
        w("        except AttributeError:")
        w("            missing.append(name)")
        w("            continue")
        w("        f.restype = res")
        w("        f.argtypes = args")
        w("    return missing")
        return "\n".join(out) + "\n"


def macro_names(cc, header, fake):
    text = run([cc, "-E", "-dM", "-undef", "-nostdinc", "-I", fake, header])
    names = []
    for line in text.splitlines():
        m = re.match(r"#define (NGPT_\w+)(\(?)\s*(.*)$", line)
        if not m or m.group(2) == "(" or m.group(3).strip() == "":
            continue  # function-like or empty (markers such as NGPT_API)
        names.append(m.group(1))
    return sorted(names)


def generate(header, cc):
    with tempfile.TemporaryDirectory() as fake:
        for n, text in FAKE_LIBC.items():
            with open(os.path.join(fake, n), "w") as f:
                f.write(text)
        names = macro_names(cc, header, fake)
        unit = os.path.join(fake, "unit.c")
        with open(unit, "w") as f:
            f.write('#include "%s"\n' % os.path.abspath(header))
            for n in names:
                f.write("int __ngpt_const_%s = (%s);\n" % (n, n))
        pre = run([cc, "-E", "-P", "-undef", "-nostdinc", "-std=c11", "-I", fake,
                   "-D__attribute__(x)=", "-D__extension__=", "-D__restrict=", "-D__inline=", unit])
    try:
        ast = c_parser.CParser().parse(pre, filename=os.path.basename(header))
    except Exception as e:  # pycparser's ParseError names line:col of the preprocessed text
        raise GenError("pycparser could not parse the preprocessed header: %s" % e)
    g = Generator()
    g.visit(ast)
    if not g.functions:
        raise GenError("no ngpt_* function found in %s" % header)
    return g.emit(os.path.basename(header)), g


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("header")
    ap.add_argument("output")
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    a = ap.parse_args()
    try:
        text, g = generate(a.header, a.cc)
    except GenError as e:
        sys.stderr.write("gen_python_bindings: %s: %s\n" % (a.header, e))
        return 1
    tmp = a.output + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
