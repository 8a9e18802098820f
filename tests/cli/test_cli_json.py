#!/usr/bin/python3
"""test_cli_json.py NEXTGPT SOURCE_ROOT TMP — the `nextgpt` CLI's --json output and `nextgpt chat`.

Schema checks written by hand with the json module (no jsonschema): `run --json`, `info --json`,
`generate --json` and `chat --json` objects have exactly the documented keys with the documented
types. Then chat driven through a pipe as a script would: two turns (an image attached and an image forced, then
text only), a bad command, a missing file, a corrupt file (the turn fails and the conversation is
unchanged), "//" escaping, /reset, /quit, --no-media-history, usage errors; exit status 1 when a
line failed, 0 otherwise.
"""
import json
import os
import shutil
import subprocess
import sys

NG, SRC, TMP = sys.argv[1], sys.argv[2], sys.argv[3]
CAT = os.path.join(SRC, "data", "tiny", "cat.jpg")
FAST = ["--steps", "2", "--max-tokens", "8", "--seed", "3"]
fails = 0


def check(cond, what):
    global fails
    if not cond:
        fails += 1
        print("FAIL: " + what, file=sys.stderr)
    return cond


def ng(args, stdin=None):
    p = subprocess.run([NG] + args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8", "replace")


# ---- a schema checker: {key: type | (type, ...) | schema dict | [item schema]} ----------------
NUM = (int, float)
NULLABLE_STR = (str, type(None))


def conforms(v, schema, path, errors):
    if isinstance(schema, dict):
        if not isinstance(v, dict):
            errors.append("%s: not an object" % path)
            return
        if set(v) != set(schema):
            errors.append("%s: keys %s, expected %s" % (path, sorted(v), sorted(schema)))
        for k, s in schema.items():
            if k in v:
                conforms(v[k], s, path + "." + k, errors)
    elif isinstance(schema, list):
        if not isinstance(v, list):
            errors.append("%s: not an array" % path)
            return
        for i, x in enumerate(v):
            conforms(x, schema[0], "%s[%d]" % (path, i), errors)
    else:
        types = schema if isinstance(schema, tuple) else (schema,)
        # bool is an int in Python: only accept it where bool is asked for
        if isinstance(v, bool) and bool not in types:
            errors.append("%s: %r is a bool" % (path, v))
        elif not isinstance(v, types):
            errors.append("%s: %r is not %s" % (path, v, "/".join(t.__name__ for t in types)))


def check_schema(obj, schema, what):
    errors = []
    conforms(obj, schema, "$", errors)
    return check(not errors, what + ": " + "; ".join(errors))


OUTPUT = {"modality": str, "status": str, "file": NULLABLE_STR, "bytes": int, "nsfw": bool, "message": str}
STAGES = {k: NUM for k in ("load", "encode", "project", "llm", "decode", "media_out")}
BYTES = {k: int for k in ("load", "encode", "project", "llm", "decode", "media_out")}
RUN = {"test_model": bool, "text": str, "outputs": [OUTPUT], "cancelled": bool, "timings_ms": STAGES,
       "peak_host_bytes": BYTES, "peak_device_bytes": BYTES}
TURN = dict(RUN, turn=int, history_media=int, history_error=NULLABLE_STR, n_past=int)
ERROR = {"error": {"line": int, "input": str, "message": str}}
COMPONENT = {"path": str, "tensors": int, "dtypes": [str], "bytes": int, "pickle_bytes": int}
PART = {"weight_bytes": int, "mapped_bytes": int, "kv_bytes": int, "work_bytes": int}
MEMORY = {"backend": str, "dtype": str, "n_ctx": int, "width": int, "height": int, "outputs": [str],
          "parts": {k: PART for k in ("backbone", "encoder", "projector", "image_decoder", "audio_decoder",
                                      "video_decoder")},
          "stage_peak_bytes": BYTES, "peak_bytes": int, "overhead_bytes": int, "mapped_bytes": int}
INFO = {"version": str, "abi": int, "cuda_build": bool, "backend": str, "device": str, "threads": int,
        "note": str, "model": {"path": str, "test_model": bool, "components": [COMPONENT], "memory": MEMORY}}


def lines_json(out, what):
    objs = []
    for i, line in enumerate(out.splitlines()):
        try:
            objs.append(json.loads(line))
        except ValueError as e:
            check(False, "%s: stdout line %d is not JSON (%s): %r" % (what, i + 1, e, line))
    return objs


def is_png(path):
    try:
        with open(path, "rb") as f:
            return f.read(8) == b"\x89PNG\r\n\x1a\n"
    except OSError:
        return False


def check_outputs(obj, what):
    for o in obj.get("outputs", []):
        check(o["modality"] in ("image", "audio", "video"), what + ": modality " + o["modality"])
        check(o["status"].startswith("NGPT_"), what + ": status " + o["status"])
        if o["status"] == "NGPT_OK":
            check(o["file"] and os.path.isfile(o["file"]) and os.path.getsize(o["file"]) == o["bytes"] > 0,
                  what + ": output file %r missing or of another size" % o["file"])
            check(o["message"] == "", what + ": a message on a produced output")
        else:
            check(o["file"] is None and o["bytes"] == 0 and o["message"], what + ": a failed output without a message")


shutil.rmtree(TMP, ignore_errors=True)
os.makedirs(TMP)

# ---- run --json -----------------------------------------------------------------------------
rc, out, err = ng(["run", "--image", CAT, "--prompt", "Draw it in the snow.", "--force", "image", "--json",
                   "--out-dir", os.path.join(TMP, "run")] + FAST)
check(rc == 0, "run --json: exit %d: %s" % (rc, err))
objs = lines_json(out, "run --json")
if check(len(objs) == 1, "run --json: %d objects on stdout, expected 1" % len(objs)):
    r = objs[0]
    check_schema(r, RUN, "run --json")
    check(r.get("test_model") is True, "run --json: test_model is not true")
    check_outputs(r, "run --json")
    imgs = [o for o in r.get("outputs", []) if o.get("modality") == "image" and o.get("status") == "NGPT_OK"]
    check(len(imgs) >= 1 and is_png(imgs[0]["file"]), "run --json: no PNG image output")
    check(all(v >= 0 for v in r.get("timings_ms", {}).values()), "run --json: a negative timing")
    check(r.get("peak_host_bytes", {}).get("decode", 0) > 0, "run --json: no host memory reported for decode")
    check(all(v == 0 for v in r.get("peak_device_bytes", {}).values()), "run --json: device bytes on the CPU")
check("RANDOM weights" in err, "run --json: no random-weights notice on stderr")

# ---- generate --json --------------------------------------------------------------------------
GENERATE = {"test_model": bool, "modality": str, "file": str, "decoder": str, "seed": int, "nsfw": bool,
            "elapsed_ms": NUM}
gen_out = os.path.join(TMP, "gen \"quoted\".png")
rc, out, err = ng(["generate", "--prompt", "a cat", "--steps", "2", "--seed", "7", "--out", gen_out, "--json"])
check(rc == 0, "generate --json: exit %d: %s" % (rc, err))
objs = lines_json(out, "generate --json")
if check(len(objs) == 1, "generate --json: %d objects, expected 1" % len(objs)):
    g = objs[0]
    check_schema(g, GENERATE, "generate --json")
    check(g.get("file") == gen_out and is_png(gen_out), "generate --json: the file is not the PNG asked for")
    check(g.get("test_model") is True and g.get("modality") == "image" and g.get("seed") == 7,
          "generate --json: %r" % g)

# ---- info --json ----------------------------------------------------------------------------
rc, out, err = ng(["info", "--json"])
check(rc == 0, "info --json: exit %d: %s" % (rc, err))
objs = lines_json(out, "info --json")
if check(len(objs) == 1, "info --json: %d objects, expected 1" % len(objs)):
    i = objs[0]
    check_schema(i, INFO, "info --json")
    comps = {c["path"]: c for c in (i.get("model") or {}).get("components", [])}
    check("llm" in comps and "decoders/image/unet" in comps, "info --json: components not listed: %s" % sorted(comps))
    check(all(c["tensors"] > 0 and c["bytes"] > 0 and c["dtypes"] for c in comps.values()),
          "info --json: a component without tensors, bytes or dtypes")
    check(i.get("model", {}).get("test_model") is True, "info --json: the tiny model is not marked test_model")
    mem = i.get("model", {}).get("memory") or {}
    check(mem.get("backend") == "cpu" and mem.get("dtype") == "F32" and mem.get("outputs") == ["image"],
          "info --json: memory estimate not for the CPU, F32, image: %r" % {k: mem.get(k) for k in ("backend", "dtype", "outputs")})
    st = mem.get("stage_peak_bytes", {})
    check(mem.get("peak_bytes", 0) == max(st.values() or [0]) > 0 and mem.get("overhead_bytes") == 0,
          "info --json: CPU turn peak is not the largest stage")
    bb = mem.get("parts", {}).get("backbone", {})
    check(bb.get("kv_bytes") == 2 * 3 * 2048 * 128 * 4 and bb.get("mapped_bytes") == bb.get("weight_bytes") > 0,
          "info --json: tiny backbone KV cache / mapped weights: %r" % bb)
# the estimate for a GPU needs none: f16, a shorter context, a bigger image, image + audio out
rc, out, err = ng(["info", "--json", "--device", "cuda", "--dtype", "f16", "--ctx", "1024", "--size", "256x128",
                   "--force", "image", "--force", "audio"])
check(rc == 0, "info --json --device cuda: exit %d: %s" % (rc, err))
objs = lines_json(out, "info --json --device cuda")
if check(len(objs) == 1, "info --json --device cuda: %d objects" % len(objs)):
    check_schema(objs[0], INFO, "info --json --device cuda")
    mem = objs[0].get("model", {}).get("memory") or {}
    check(mem.get("backend") == "cuda" and mem.get("dtype") == "F16" and mem.get("n_ctx") == 1024 and
          mem.get("width") == 256 and mem.get("height") == 128 and mem.get("outputs") == ["image", "audio"],
          "info --device cuda: the estimate's settings: %r" % {k: mem.get(k) for k in ("backend", "dtype", "n_ctx", "outputs")})
    bb = (mem.get("parts") or {}).get("backbone") or {}
    # on CUDA only embed_tokens stays mapped (a host view): the backbone's mapped bytes are the total
    check(mem.get("overhead_bytes") == 1 << 30 and 0 < mem.get("mapped_bytes", -1) < bb.get("weight_bytes", 0) and
          mem.get("mapped_bytes") == bb.get("mapped_bytes"),
          "info --device cuda: no CUDA allowance, or weights other than embed_tokens still mapped: %r" %
          {k: mem.get(k) for k in ("overhead_bytes", "mapped_bytes")})
    check(mem.get("parts", {}).get("backbone", {}).get("kv_bytes") == 2 * 3 * 1024 * 128 * 2,
          "info --device cuda: KV cache not f16 x 1024 positions")
rc, out, err = ng(["info", "--json", "--device", "cpu", "--dtype", "f16"])
check(rc == 1 and "CUDA" in err, "info --dtype f16 on the CPU: exit %d, %r" % (rc, err))
objs = lines_json(out, "info --dtype f16 on the CPU")
check(len(objs) == 1 and objs[0].get("model", {}).get("memory", 0) is None,
      "info --dtype f16 on the CPU: memory is not null")
for bad in (["--size", "12"], ["--size", "0x64"], ["--ctx", "0"], ["--force", "text"], ["--dtype", "f8"]):
    rc, out, err = ng(["info"] + bad)
    check(rc == 2 and out == "", "info %s: exit %d (expected 2)" % (" ".join(bad), rc))
rc, out, err = ng(["info", "--json", "--model", os.path.join(TMP, "nowhere")])
check(rc == 1 and "bundle.json" in err and out == "", "info --json on a folder without bundle.json: exit %d" % rc)

# ---- chat --json through a pipe ---------------------------------------------------------------
CHAT = ["chat", "--json", "--out-dir", os.path.join(TMP, "chat")] + FAST
script = "\n".join([
    "/image " + CAT,              # line 1: attach
    "/force image",               # line 2
    "Draw it in the snow.",       # line 3: turn 1 (image in, image forced out)
    "",                           # line 4: ignored
    "/bogus",                     # line 5: error
    "/image " + os.path.join(TMP, "no-such-cat.jpg"),  # line 6: error, names the file
    "/force smell",               # line 7: error
    "What did you draw?",         # line 8: turn 2 (text only)
    "//slash first",              # line 9: turn 3, the message "/slash first"
    "/reset",                     # line 10
    "hello again",                # line 11: turn 4, a new conversation
    "/quit",                      # line 12
    "never read",                 # line 13
]) + "\n"
rc, out, err = ng(CHAT, script.encode())
check(rc == 1, "chat with failed lines: exit %d, expected 1" % rc)
objs = lines_json(out, "chat --json")
turns = [o for o in objs if "turn" in o]
errors = [o for o in objs if "error" in o]
check(len(objs) == 7 and len(turns) == 4 and len(errors) == 3,
      "chat --json: %d objects (%d turns, %d errors), expected 7 (4, 3): %s" % (len(objs), len(turns), len(errors), out))
for t in turns:
    check_schema(t, TURN, "chat --json turn %s" % t.get("turn"))
    check_outputs(t, "chat --json turn %s" % t.get("turn"))
for e in errors:
    check_schema(e, ERROR, "chat --json error")
if len(turns) == 4 and len(errors) == 3:
    t1, t2, t3, t4 = turns
    check([t["turn"] for t in turns] == [1, 2, 3, 4], "chat: turn numbers %s" % [t["turn"] for t in turns])
    imgs = [o for o in t1["outputs"] if o["modality"] == "image" and o["status"] == "NGPT_OK"]
    check(len(imgs) >= 1 and is_png(imgs[0]["file"]) and os.path.basename(imgs[0]["file"]).startswith("turn1-image-"),
          "chat turn 1: no turn1-image-*.png")
    produced = sum(o["status"] == "NGPT_OK" for o in t1["outputs"])
    check(t1["history_media"] == produced >= 1 and t1["history_error"] is None,
          "chat turn 1: history_media %d, produced %d" % (t1["history_media"], produced))
    check(t1["n_past"] < t2["n_past"] < t3["n_past"], "chat: n_past does not grow: %s" % [t["n_past"] for t in turns])
    check(t4["n_past"] < t3["n_past"], "chat: /reset did not start over (n_past %d after %d)" % (t4["n_past"], t3["n_past"]))
    check([e["error"]["line"] for e in errors] == [5, 6, 7], "chat: error lines %s" % [e["error"]["line"] for e in errors])
    check("/bogus" in errors[0]["error"]["message"], "chat: the unknown command is not named")
    check("no-such-cat.jpg" in errors[1]["error"]["message"], "chat: the missing file is not named")
    check("smell" in errors[2]["error"]["message"], "chat: the bad /force value is not named")
check("no-such-cat.jpg" in err and "line 6" in err, "chat: the missing file is not reported on stderr")

# a failed turn (a corrupt image) leaves the conversation unchanged: the next turn answers as if
# the failed line had not been there
bad = os.path.join(TMP, "bad.jpg")
with open(bad, "wb") as f:
    f.write(b"not a jpeg")
rc_a, out_a, err_a = ng(CHAT, b"hello\n/image " + bad.encode() + b"\nlook at this\nand again\n")
rc_b, out_b, err_b = ng(CHAT, b"hello\nand again\n")
check(rc_a == 1 and rc_b == 0, "chat with a corrupt image: exit %d (expected 1), without it %d (expected 0)" % (rc_a, rc_b))
a, b = lines_json(out_a, "chat corrupt"), lines_json(out_b, "chat clean")
if check(len(a) == 3 and len(b) == 2 and "error" in a[1], "chat corrupt: objects %s / %s" % (out_a, out_b)):
    check("bad.jpg" in a[1]["error"]["message"], "chat corrupt: the file is not named")
    check(a[2]["text"] == b[1]["text"] and a[2]["n_past"] == b[1]["n_past"],
          "chat: the turn after a failed one differs from the same conversation without it")
    check(a[2]["turn"] == 3 and b[1]["turn"] == 2, "chat: failed messages count as turns")

# --no-media-history: the answer stays as generated
rc, out, err = ng(CHAT + ["--no-media-history", "--force", "image"], b"a cat\n")
objs = lines_json(out, "chat --no-media-history")
check(rc == 0 and len(objs) == 1 and objs[0].get("history_media") == 0,
      "chat --no-media-history: exit %d, %s" % (rc, out))

# text mode: the answer and 'wrote' lines on stdout, EOF ends, exit 0
rc, out, err = ng(["chat", "--out-dir", os.path.join(TMP, "text")] + FAST, b"/force image\na cat\n")
check(rc == 0 and "wrote " + os.path.join(TMP, "text", "turn1-image-0.png") in out,
      "chat text mode: exit %d, stdout %r" % (rc, out))
check("\033[" not in err, "chat text mode: progress escapes on a piped stderr")

# usage errors: exit 2
for args in (["chat", "--prompt", "x"], ["chat", "--image", CAT], ["chat", "--bogus"], ["chat", "--force", "smell"],
             ["info", "--prompt", "x"]):
    rc, out, err = ng(args, b"")
    check(rc == 2 and "usage" in err, "%s: exit %d, expected 2 with the usage" % (" ".join(args), rc))
rc, out, err = ng(["chat", "--help"])
check(rc == 0 and "/image PATH" in out and "/reset" in out, "chat --help: exit %d or the commands missing" % rc)

if fails == 0:
    print("test_cli_json: all passed", file=sys.stderr)
sys.exit(1 if fails else 0)
