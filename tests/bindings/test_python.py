#!/usr/bin/python3
"""The Python package (bindings/python/nextgpt) against the built library and the golden cases.

Run by meson with Debian's /usr/bin/python3, PYTHONPATH=<build>/bindings/python and
NGPT_LIBRARY=<build>/lib/libnextgpt.so. Golden cases: ../shared/golden beside the source root
(NGPT_GOLDEN_DIR overrides). Exit 77 (SKIP) without numpy or without the golden folder.
"""
import array
import contextlib
import ctypes
import gc
import json
import os
import struct
import sys
import threading
import unittest
import weakref

try:
    import numpy as np
except ImportError:
    print("SKIP: python3-numpy is not installed (apt-get install python3-numpy)")
    sys.exit(77)

try:  # optional: Image.from_pil / to_pil and PIL images as media are tested where it is installed
    from PIL import Image as PILImage
except ImportError:
    PILImage = None

import nextgpt  # noqa: E402

# Every public function is called by some test (issue 7): each lib.ngpt_* is wrapped to note
# its name, and a whole run fails at the end if a declared function was never called.
CALLED = set()


def _noted(name, fn):
    def call(*args):
        CALLED.add(name)
        return fn(*args)
    call.argtypes, call.restype = fn.argtypes, fn.restype
    return call


for _name in nextgpt.capi.FUNCTIONS:
    if _name not in nextgpt.missing_functions:
        setattr(nextgpt.lib, _name, _noted(_name, getattr(nextgpt.lib, _name)))
CALLED.update(nextgpt._result_text)  # called through their own prototypes (NUL-safe text)


@contextlib.contextmanager
def numpy_absent(absent=True):
    """nextgpt as it runs where numpy is not importable: the _np of each of its modules that has one
    is None inside the block (absent=False: unchanged)."""
    mods = [m for n, m in list(sys.modules.items())
            if absent and n.split(".")[0] == "nextgpt" and hasattr(m, "_np")]
    saved = [m._np for m in mods]
    for m in mods:
        m._np = None
    try:
        yield
    finally:
        for m, v in zip(mods, saved):
            m._np = v


SRC = os.environ.get("NGPT_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
GOLDEN = os.environ.get("NGPT_GOLDEN_DIR", os.path.join(SRC, "..", "shared", "golden"))
if not os.path.isdir(GOLDEN):
    print("SKIP: the golden cases are not at %s (set NGPT_GOLDEN_DIR)" % GOLDEN)
    sys.exit(77)
TOK = os.path.join(GOLDEN, "models", "tok-a-nextgpt")
NP = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}


def safetensors(path):
    """{name: numpy array} of a safetensors file (enough of the format for the golden files)."""
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    head = json.loads(b[8:8 + n])
    head.pop("__metadata__", None)
    out = {}
    for k, v in head.items():
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + s:8 + n + e], NP[v["dtype"]]).reshape(v["shape"])
    return out


def case(*parts):
    d = os.path.join(GOLDEN, *parts)
    with open(os.path.join(d, "case.json")) as f:
        return d, json.load(f)


def own_sched_case(stage, name):
    """One of our scheduler cases (tests/golden/vision): case.json, its params less
    num_inference_steps, that step count, the inputs and the expected outputs."""
    d = os.path.join(SRC, "tests", "golden", "vision", stage, name)
    with open(os.path.join(d, "case.json")) as f:
        c = json.load(f)
    p = dict(c["params"])
    steps = p.pop("num_inference_steps")
    return (c, p, steps, safetensors(os.path.join(d, "inputs.safetensors")),
            safetensors(os.path.join(d, "expected.safetensors")))


class Basics(unittest.TestCase):
    def test_version(self):
        self.assertEqual(nextgpt.version(), nextgpt.capi.NGPT_VERSION_STRING)
        self.assertEqual(nextgpt.version_number(), nextgpt.capi.NGPT_VERSION_NUMBER)
        self.assertEqual(nextgpt.abi_version(), nextgpt.capi.NGPT_ABI_VERSION)
        self.assertIn(nextgpt.has_cuda_build(), (True, False))
        self.assertEqual(nextgpt.missing_functions, [])

    def test_enums(self):
        self.assertEqual(nextgpt.Status.ERR_NOT_FOUND, nextgpt.capi.NGPT_ERR_NOT_FOUND)
        self.assertEqual(nextgpt.Dtype.F32, 0)
        self.assertEqual(nextgpt.DeviceKind.CPU, nextgpt.capi.NGPT_DEVICE_CPU)
        self.assertEqual(nextgpt.lib.ngpt_status_string(-2), b"NGPT_ERR_NOT_FOUND")
        self.assertEqual(nextgpt.lib.ngpt_dtype_size(nextgpt.Dtype.BF16), 2)

    def test_context_cpu(self):
        with nextgpt.Context(device="cpu", n_threads=1) as ctx:
            self.assertEqual(ctx.backend, nextgpt.Backend.CPU)
            self.assertEqual(ctx.backend_name, "cpu")
            self.assertTrue(ctx.device_name)
            self.assertEqual(ctx.backend_note, "")
            self.assertEqual(ctx.n_threads, 1)
            self.assertGreaterEqual(ctx.memory_peak, ctx.memory_used)
        self.assertTrue(ctx.closed)
        ctx.close()  # twice is harmless
        with self.assertRaises(ValueError):
            ctx.device_name

    def test_context_gc_and_log_callback(self):
        seen = []
        ctx = nextgpt.Context(device="auto", log_level=nextgpt.LogLevel.DEBUG,
                              log_callback=lambda lvl, msg: seen.append((lvl, msg)))
        if ctx.backend == nextgpt.Backend.CPU:  # AUTO falling back to the CPU logs why, at INFO
            self.assertIn((nextgpt.LogLevel.INFO, ctx.backend_note), seen)
        del ctx
        gc.collect()  # __del__ frees it; the callback object lived as long as the context

    def test_log_callback_raising(self):
        """A log callback cannot cancel the call that logs: its exception goes to
        sys.unraisablehook, and a KeyboardInterrupt reaches the main thread after the call."""
        logs = lambda cb: nextgpt.Context(device="auto", log_level=nextgpt.LogLevel.DEBUG, log_callback=cb)
        calls = []
        with logs(lambda lvl, msg: calls.append(msg)):
            pass
        if not calls:
            self.skipTest("creating a context logged nothing here (a CUDA device was found)")
        reported, hook = [], sys.unraisablehook
        sys.unraisablehook = reported.append
        try:
            def boom(lvl, msg):
                raise ValueError("from the log callback")
            with logs(boom):
                pass
        finally:
            sys.unraisablehook = hook
        self.assertTrue(reported)
        self.assertIsInstance(reported[0].exc_value, ValueError)

        seen = []

        def interrupt(lvl, msg):
            seen.append(msg)
            raise KeyboardInterrupt
        with self.assertRaises(KeyboardInterrupt):
            logs(interrupt)  # raised once ngpt_context_create has returned (the context leaks)
        self.assertEqual(seen, calls)
        armed = []
        with logs(lambda lvl, msg: armed and interrupt(lvl, msg)) as ctx:
            armed.append(True)  # ctx._log: the C callback the library calls, here as a worker thread would
            worker = threading.Thread(target=ctx._log, args=(nextgpt.LogLevel.WARN, b"from a worker", None))
            with self.assertRaises(KeyboardInterrupt):
                worker.start()
                worker.join()
                for _ in range(1000):  # taken by the main thread at its next bytecodes
                    pass

    def test_error_carries_status_and_message(self):
        with self.assertRaises(nextgpt.Error) as e:
            nextgpt.Tokenizer("/nonexistent/tokenizer-folder")
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_NOT_FOUND)
        self.assertEqual(e.exception.status_name, "NGPT_ERR_NOT_FOUND")
        self.assertIn("/nonexistent/tokenizer-folder", e.exception.message)
        self.assertIn(e.exception.message, str(e.exception))
        with self.assertRaises(nextgpt.Error) as e:
            nextgpt.Image("/nonexistent/x.png")
        self.assertIn("x.png", e.exception.message)

    def test_clear_error(self):
        with self.assertRaises(nextgpt.Error) as e:
            nextgpt.Image("/nonexistent/y.png")
        self.assertEqual(nextgpt.lib.ngpt_last_error().decode(), e.exception.message)
        nextgpt.clear_error()
        self.assertEqual(nextgpt.lib.ngpt_last_error(), b"")

    def test_tensor_create_raw(self):
        # the generated layer, without the wrapper: an out-pointer struct and a fixed array
        t = nextgpt.capi.ngpt_tensor()
        shape = (nextgpt.lib.ngpt_tensor_create.argtypes[3]._type_ * 2)(2, 3)
        self.assertEqual(nextgpt.lib.ngpt_tensor_create(t, nextgpt.Dtype.I32, 2, shape), 0)
        w = nextgpt.Tensor(t)
        self.assertEqual((w.shape, w.dtype, w.nbytes), ((2, 3), nextgpt.Dtype.I32, 24))
        self.assertEqual(nextgpt.lib.ngpt_tensor_numel(t), 6)
        self.assertEqual(w.tolist(), [[0, 0, 0], [0, 0, 0]])
        self.assertEqual(w.numpy().shape, (2, 3))
        w.close()
        self.assertEqual(t.rank, 0)

    def test_tensor_from_buffer(self):
        x = np.array([[1.0, -2.5], [3.0e38, 0.15625]], np.float32)
        bits = (x.view(np.uint32) >> 16).astype(np.uint16)  # exact in BF16
        b = nextgpt.Tensor.from_buffer(bits, nextgpt.Dtype.BF16)
        self.assertEqual((b.dtype, b.shape), (nextgpt.Dtype.BF16, (2, 2)))
        self.assertTrue((b.numpy() == bits).all())  # the round trip numpy() -> from_buffer
        back = nextgpt.Tensor.from_buffer(b.numpy(), nextgpt.Dtype.BF16)
        self.assertEqual(back.tobytes(), b.tobytes())
        self.assertEqual(nextgpt.Tensor.from_buffer(bits.byteswap().newbyteorder(), nextgpt.Dtype.BF16).tobytes(),
                         b.tobytes())
        # bytes-like, default shape: the element count; an explicit shape
        f = nextgpt.Tensor.from_buffer(x.tobytes(), nextgpt.Dtype.F32)
        self.assertEqual((f.shape, f.tolist()[1]), ((4,), -2.5))
        self.assertEqual(nextgpt.Tensor.from_buffer(bytearray(8), nextgpt.Dtype.I32, [1, 2]).shape, (1, 2))
        self.assertEqual(nextgpt.Tensor.from_buffer(b"", nextgpt.Dtype.F32, [0, 3]).shape, (0, 3))
        for bad in ((b"abc", nextgpt.Dtype.F32, None), (b"abcd", nextgpt.Dtype.F32, [2]),
                    (b"abcd", nextgpt.Dtype.F32, [-1]), (b"", nextgpt.Dtype.F32, [1] * 9)):
            with self.assertRaises(ValueError):
                nextgpt.Tensor.from_buffer(*bad)
        with self.assertRaises(ValueError):
            nextgpt.Tensor.from_buffer(b"", 999)
        # a BF16 tensor is an input like any other: the projector reads it as the F32 it holds
        with nextgpt.Context(device="cpu") as ctx:
            pj = nextgpt.Projector(ctx, os.path.join(TINY, "projectors"), input=True)
            emb = np.random.default_rng(5).standard_normal((1, pj.input_dim)).astype(np.float32)
            emb = (emb.view(np.uint32) & 0xFFFF0000).view(np.float32)
            as_bf16 = nextgpt.Tensor.from_buffer((emb.view(np.uint32) >> 16).astype(np.uint16), nextgpt.Dtype.BF16)
            self.assertTrue((pj.input(as_bf16).numpy() == pj.input(emb).numpy()).all())


class TokenizerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tok = nextgpt.Tokenizer(TOK)

    @classmethod
    def tearDownClass(cls):
        cls.tok.close()

    def test_encode_golden(self):
        for name in ("nextgpt_prompt", "signal_tokens", "signal_spaced"):
            d, c = case("llm", "tokenizer.encode", name)
            self.assertTrue(c["model"].endswith("tok-a-nextgpt"))
            want = safetensors(os.path.join(d, "expected.safetensors"))["ids"].tolist()
            self.assertEqual(self.tok.encode(c["params"]["text"], add_bos=c["params"]["add_bos"]), want, name)

    def test_decode_golden(self):
        for name in ("signal_tokens", "bos_eos_skipped", "partial_utf8_bytes"):
            d, c = case("llm", "tokenizer.decode", name)
            ids = safetensors(os.path.join(d, "inputs.safetensors"))["ids"].tolist()
            want = safetensors(os.path.join(d, "expected.safetensors"))["text_utf8"].tobytes()
            skip = c["params"].get("skip_special_tokens", False)
            self.assertEqual(self.tok.decode_bytes(ids, skip), want, name)
            self.assertEqual(self.tok.decode(ids, skip), want.decode("utf-8"), name)

    def test_roundtrip_and_getters(self):
        ids = self.tok.encode("hello world [IMG0]")
        self.assertEqual(ids[0], self.tok.bos_id)
        self.assertEqual(self.tok.decode(ids, skip_special_tokens=True), "hello world [IMG0]")
        self.assertEqual(self.tok.encode("", add_bos=False), [])
        self.assertEqual(self.tok.decode([]), "")
        self.assertEqual(self.tok.piece_to_id("[IMG0]"), ids[-1])
        self.assertEqual(self.tok.token_to_piece(ids[-1]), "[IMG0]")
        self.assertIsNone(self.tok.token_to_piece(10 ** 6))
        self.assertIsNone(self.tok.piece_to_id("no such piece at all"))
        self.assertEqual(len(self.tok), self.tok.vocab_size)
        self.assertEqual((self.tok.bos_id, self.tok.eos_id), (1, 2))

    def test_decode_error(self):
        with self.assertRaises(nextgpt.Error) as e:
            self.tok.decode([self.tok.vocab_size + 5])
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_INVALID_ARGUMENT)


class SchedulerTest(unittest.TestCase):
    def run_case(self, sample_as):
        d, c = case("vision", "scheduler.ddim", "sd15_n6")
        p = dict(c["params"])
        steps = p.pop("num_inference_steps")
        eta = p.pop("eta")
        p["_class_name"] = "DDIMScheduler"
        inp = safetensors(os.path.join(d, "inputs.safetensors"))
        exp = safetensors(os.path.join(d, "expected.safetensors"))
        with nextgpt.Scheduler(json_text=json.dumps(p), eta=eta) as s:
            self.assertEqual(s.kind, nextgpt.SchedulerKind.DDIM)
            s.set_timesteps(steps)
            self.assertEqual(s.timesteps, exp["timesteps"].tolist())
            np.testing.assert_allclose(s.alphas_cumprod, exp["alphas_cumprod"], rtol=1e-6)
            self.assertEqual(s.init_noise_sigma, 1.0)
            sample = sample_as(inp["sample0"].copy())
            for k, t in enumerate(s.timesteps):
                sample = s.scale_model_input(sample, t)
                sample = s.step(inp["model_outputs"][k], t, sample)
                got = (sample.numpy() if isinstance(sample, nextgpt.Tensor)
                       else np.asarray(sample, np.float32)).reshape(exp["samples"][k].shape)
                np.testing.assert_allclose(got, exp["samples"][k], atol=c["atol"], rtol=c["rtol"])
            s.reset()

    def test_ddim_golden_numpy_in_place(self):
        self.run_case(lambda a: a)

    def test_ddim_golden_array(self):
        self.run_case(lambda a: array.array("f", a.ravel().tolist()))

    def test_ddim_golden_tensor(self):  # a library Tensor (a UNet's output) is stepped in place
        self.run_case(lambda a: nextgpt.Tensor.from_buffer(a, nextgpt.Dtype.F32))

    def test_int64_calls_match_f64(self):
        """The C API's integer-timestep calls (ngpt_scheduler_step, _scale_model_input, _add_noise),
        which this layer reaches only through nextgpt.lib, against the _f64 ones and the golden case."""
        lib, C = nextgpt.lib, nextgpt.capi
        fp = lambda a: a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))  # noqa: E731
        d, c = case("vision", "scheduler.ddim", "sd15_n6")
        p = dict(c["params"])
        steps, eta = p.pop("num_inference_steps"), p.pop("eta")
        p["_class_name"] = "DDIMScheduler"
        inp = safetensors(os.path.join(d, "inputs.safetensors"))
        exp = safetensors(os.path.join(d, "expected.safetensors"))
        a, b = (nextgpt.Scheduler(json_text=json.dumps(p), eta=eta) for _ in range(2))
        for s in (a, b):
            s.set_timesteps(steps)
        x64, xi = inp["sample0"].copy(), inp["sample0"].copy()
        n = xi.size
        for k, t in enumerate(a.timesteps):
            x64 = a.scale_model_input(x64, t)
            self.assertEqual(lib.ngpt_scheduler_scale_model_input(b._h(), fp(xi), n, t), C.NGPT_OK)
            x64 = a.step(inp["model_outputs"][k], t, x64)
            mo = np.ascontiguousarray(inp["model_outputs"][k])
            self.assertEqual(lib.ngpt_scheduler_step(b._h(), fp(mo), t, fp(xi), n, None), C.NGPT_OK)
            np.testing.assert_array_equal(xi, x64)
            np.testing.assert_allclose(xi, exp["samples"][k], atol=c["atol"], rtol=c["rtol"])
        orig, noise = np.ones(n, np.float32), np.full(n, 0.5, np.float32)
        out = np.zeros(n, np.float32)
        self.assertEqual(lib.ngpt_scheduler_add_noise(b._h(), fp(out), fp(orig), fp(noise), n, 500), C.NGPT_OK)
        np.testing.assert_array_equal(out, a.add_noise(orig, noise, 500))
        self.assertEqual(lib.ngpt_scheduler_add_noise(b._h(), fp(out), fp(orig), fp(noise), n, 10 ** 6),
                         C.NGPT_ERR_INVALID_ARGUMENT)  # 0 <= t < num_train_timesteps
        self.assertIn("ngpt_scheduler_add_noise", lib.ngpt_last_error().decode())
        # Euler: an integral timestep (the first, 999) is served by the int64 calls as by the _f64
        # ones; a fractional one cannot be named by them (its truncation is not in the schedule)
        with nextgpt.Scheduler(json_text=json.dumps(p), kind=nextgpt.SchedulerKind.EULER) as e:
            e.set_timesteps(6)
            ts = e.timesteps
            self.assertEqual(ts[0], 999.0)
            self.assertNotEqual(ts[1], int(ts[1]))
            want = e.scale_model_input(orig.copy(), ts[0])
            got = orig.copy()
            self.assertEqual(lib.ngpt_scheduler_scale_model_input(e._h(), fp(got), n, 999), C.NGPT_OK)
            np.testing.assert_array_equal(got, want)
            self.assertNotEqual(got[0], orig[0])  # divided by (sigma^2 + 1)^0.5
            self.assertEqual(lib.ngpt_scheduler_scale_model_input(e._h(), fp(got), n, int(ts[1])),
                             C.NGPT_ERR_INVALID_ARGUMENT)
            self.assertIn("timestep", lib.ngpt_last_error().decode())
        a.close()
        b.close()

    def test_from_file_add_noise_and_errors(self):
        cfg = os.path.join(GOLDEN, "models", "sd-a", "scheduler", "scheduler_config.json")
        s = nextgpt.Scheduler(cfg)
        with self.assertRaises(nextgpt.Error) as e:
            s.timesteps  # before set_timesteps
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_INVALID_ARGUMENT)
        s.set_timesteps(4)
        x = np.ones(8, np.float32)
        out = s.add_noise(x, np.zeros(8, np.float32), 0)
        acp0 = s.alphas_cumprod[0]
        np.testing.assert_allclose(out, np.full(8, np.sqrt(acp0), np.float32), rtol=1e-6)
        with self.assertRaises(nextgpt.Error):
            s.step(x, 123456, x.copy())  # not a timestep of the schedule
        with self.assertRaises(nextgpt.Error) as e:
            nextgpt.Scheduler(json_text="{not json")
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_BAD_FORMAT)
        del s
        gc.collect()

    def test_euler_golden(self):
        """Our k-diffusion cases (tests/golden): float timesteps, scale_model_input, init_noise_sigma."""
        for stage, name, kind in (("scheduler.euler", "karras_n9", nextgpt.SchedulerKind.EULER),
                                  ("scheduler.euler_ancestral", "sd15_n10", nextgpt.SchedulerKind.EULER_ANCESTRAL),
                                  ("scheduler.heun", "sd15_n8", nextgpt.SchedulerKind.HEUN),
                                  ("scheduler.lms", "sd15_n12", nextgpt.SchedulerKind.LMS),
                                  ("scheduler.kdpm2", "sd15_n8", nextgpt.SchedulerKind.KDPM2),
                                  ("scheduler.kdpm2_ancestral", "sd15_n10", nextgpt.SchedulerKind.KDPM2_ANCESTRAL)):
            c, p, steps, inp, exp = own_sched_case(stage, name)
            with nextgpt.Scheduler(json_text=json.dumps(p), kind=kind) as s:
                self.assertEqual(s.kind, kind)
                s.set_timesteps(steps)
                ts = s.timesteps
                self.assertTrue(all(isinstance(t, float) for t in ts))
                np.testing.assert_allclose(ts, exp["timesteps"], rtol=1e-6)
                self.assertEqual(np.float32(s.init_noise_sigma), exp["init_noise_sigma"][0])
                sample = inp["sample0"].copy()
                for k, t in enumerate(ts):
                    x_in = s.scale_model_input(sample.copy(), t)
                    np.testing.assert_allclose(x_in, exp["model_inputs"][k], atol=c["atol"], rtol=c["rtol"])
                    noise = inp["variance_noise"][k] if "variance_noise" in inp else None
                    sample = s.step(inp["model_outputs"][k], t, sample, noise)
                    np.testing.assert_allclose(sample, exp["samples"][k], atol=c["atol"], rtol=c["rtol"])
                out = s.add_noise(np.ones(4, np.float32), np.ones(4, np.float32), ts[-1])
                self.assertEqual(out.shape, (4,))
                with self.assertRaises(nextgpt.Error) as e:
                    s.step(inp["model_outputs"][0], ts[0] + 0.25, sample)  # not a timestep of the schedule
                self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_INVALID_ARGUMENT)

    def test_deis_ddpm_golden(self):
        """Our DEIS, DDPM and DPM-Solver singlestep cases (tests/golden): integer timesteps, the
        history, DDPM's noise."""
        for stage, name, cls, kind in (("scheduler.deis", "order3_n10", "DEISMultistepScheduler",
                                        nextgpt.SchedulerKind.DEIS_MULTISTEP),
                                       ("scheduler.ddpm", "vpred_small_log_n8", "DDPMScheduler",
                                        nextgpt.SchedulerKind.DDPM),
                                       ("scheduler.dpmsolver_singlestep", "order3_heun_n11",
                                        "DPMSolverSinglestepScheduler", nextgpt.SchedulerKind.DPMSOLVER_SINGLESTEP)):
            c, p, steps, inp, exp = own_sched_case(stage, name)
            with nextgpt.Scheduler(json_text=json.dumps(dict(p, _class_name=cls))) as s:
                self.assertEqual(s.kind, kind)
                s.set_timesteps(steps)
                self.assertEqual(list(s.timesteps), list(exp["timesteps"]))
                sample = inp["sample0"].copy()
                for k, t in enumerate(s.timesteps):
                    noise = inp["variance_noise"][k] if "variance_noise" in inp else None
                    sample = s.step(inp["model_outputs"][k], t, sample, noise)
                    np.testing.assert_allclose(sample, exp["samples"][k], atol=c["atol"], rtol=c["rtol"])

    def test_unipc_golden(self):
        """Our UniPC cases (tests/golden): integer timesteps; solver_order and solver_type as params
        give what the config gives."""
        for name, params in (("order3_bh1_n10", {}),
                             ("order3_bh1_n10", dict(solver_order=3, solver_type=nextgpt.DpmSolverType.BH1)),
                             ("disable_corrector_n6", {})):
            c, p, steps, inp, exp = own_sched_case("scheduler.unipc", name)
            if params:  # the same scheduler from the defaults and the params
                p = {k: v for k, v in p.items() if k not in ("solver_order", "solver_type")}
            with nextgpt.Scheduler(json_text=json.dumps(p), kind=nextgpt.SchedulerKind.UNIPC_MULTISTEP, **params) as s:
                s.set_timesteps(steps)
                ts = s.timesteps
                self.assertEqual(list(ts), list(exp["timesteps"]))
                self.assertTrue(all(isinstance(t, int) for t in ts))
                sample = inp["sample0"].copy()
                for k, t in enumerate(ts):
                    sample = s.step(inp["model_outputs"][k], t, sample)
                    np.testing.assert_allclose(sample, exp["samples"][k], atol=c["atol"], rtol=c["rtol"])


class MediaTest(unittest.TestCase):
    def test_image_preprocess_golden(self):
        for name in ("small_png", "landscape_jpeg"):
            d, c = case("vision", "image.preprocess", name)
            path = os.path.join(d, c["params"]["file"])
            want = safetensors(os.path.join(d, "expected.safetensors"))["pixels"]
            with nextgpt.Image(path) as img:
                self.assertGreater(img.width * img.height, 0)
                px = img.pixels()
                self.assertEqual(px.shape, (img.height, img.width, 3))
                with img.preprocess() as t:
                    self.assertEqual(t.shape, (3, 224, 224))
                    self.assertEqual(t.dtype, nextgpt.Dtype.F32)
                    np.testing.assert_allclose(t.numpy(), want, atol=c["atol"], rtol=c["rtol"])
            with open(path, "rb") as f:
                img2 = nextgpt.Image.from_bytes(f.read(), name=name)
            np.testing.assert_array_equal(img2.pixels(), px)
            img3 = nextgpt.Image.from_rgb8(px)
            np.testing.assert_array_equal(img3.pixels(), px)

    def test_image_errors_and_postprocess(self):
        with self.assertRaises(nextgpt.Error) as e:
            nextgpt.Image.from_bytes(b"not an image", name="junk.bin")
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_BAD_FORMAT)
        self.assertIn("junk.bin", e.exception.message)
        x = np.zeros((1, 3, 2, 2), np.float32)
        x[0, 0] = 1.0
        u8 = nextgpt.Image.postprocess(x).numpy()
        self.assertEqual(u8.shape, (1, 2, 2, 3))
        self.assertEqual(u8[0, 0, 0].tolist(), [255, 128, 128])

    def test_audio_preprocess_golden(self):
        d, c = case("vision", "audio.fbank", "short_1_2s")
        want = safetensors(os.path.join(d, "expected.safetensors"))["fbank"]
        with nextgpt.Audio(os.path.join(d, c["params"]["file"])) as a:
            self.assertGreater(a.sample_rate, 0)
            self.assertEqual(a.samples().shape, (a.frames, a.channels))
            t = a.preprocess(clip_rule=nextgpt.ClipRule.PYTORCHVIDEO_0_1_5)
            np.testing.assert_allclose(t.numpy(), want, atol=c["atol"], rtol=c["rtol"])
        b = nextgpt.Audio.from_pcm(np.zeros(1600, np.float32), channels=1, sample_rate=16000)
        self.assertEqual((b.frames, b.channels, b.sample_rate), (1600, 1, 16000))

    def test_video_error(self):
        with self.assertRaises(nextgpt.Error) as e:
            nextgpt.video_preprocess(b"\0" * 64, name="junk.mp4")
        self.assertIn("junk.mp4", e.exception.message)
        with self.assertRaises(nextgpt.Error) as e:
            nextgpt.video_preprocess("/nonexistent/clip.mp4")
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_NOT_FOUND)
        self.assertIn("clip.mp4", e.exception.message)

    def test_audio_from_bytes_golden(self):
        """Audio.from_bytes gives the file's samples, and so the golden fbank."""
        d, c = case("vision", "audio.fbank", "stereo44k_4s")
        want = safetensors(os.path.join(d, "expected.safetensors"))["fbank"]
        path = os.path.join(d, c["params"]["file"])
        with open(path, "rb") as f:
            a = nextgpt.Audio.from_bytes(f.read(), name="stereo.wav")
        with nextgpt.Audio(path) as b:
            self.assertEqual((a.sample_rate, a.channels, a.frames), (b.sample_rate, b.channels, b.frames))
            np.testing.assert_array_equal(a.samples(), b.samples())
        self.assertEqual((a.sample_rate, a.channels), (44100, 2))
        np.testing.assert_allclose(a.preprocess().numpy(), want, atol=c["atol"], rtol=c["rtol"])
        with self.assertRaises(nextgpt.Error) as e:
            nextgpt.Audio.from_bytes(b"RIFF but not really", name="junk.wav")
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_BAD_FORMAT)
        self.assertIn("junk.wav", e.exception.message)

    def test_audio_encode_and_save(self):
        import tempfile
        AF = nextgpt.AudioFormat
        t = np.arange(1600, dtype=np.float32) / 16000
        pcm = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.cos(2 * np.pi * 220 * t)], 1).astype(np.float32)
        a = nextgpt.Audio.from_pcm(pcm, channels=2, sample_rate=16000)
        wav = a.encode()
        self.assertEqual((wav[:4], wav[8:12]), (b"RIFF", b"WAVE"))
        self.assertEqual(a.encode(AF.WAV16), wav)
        back = nextgpt.Audio.from_bytes(wav)
        self.assertEqual((back.frames, back.channels, back.sample_rate), (1600, 2, 16000))
        np.testing.assert_allclose(back.samples(), pcm, atol=1.0 / 32768)  # 16-bit PCM
        exact = nextgpt.Audio.from_bytes(a.encode("wav_float")).samples()
        np.testing.assert_array_equal(exact, pcm)  # float WAV is lossless
        flac = a.encode("flac")
        self.assertEqual(flac[:4], b"fLaC")
        np.testing.assert_allclose(nextgpt.Audio.from_bytes(flac).samples(), pcm, atol=1.0 / 32768)
        ogg = a.encode("ogg")
        self.assertEqual(ogg[:4], b"OggS")
        self.assertEqual(nextgpt.Audio.from_bytes(ogg).channels, 2)
        with tempfile.TemporaryDirectory() as tmp:
            a.save(os.path.join(tmp, "x.wav"))  # the format from the extension
            with open(os.path.join(tmp, "x.wav"), "rb") as f:
                self.assertEqual(f.read(), wav)
            a.save(os.path.join(tmp, "y.bin"), format="wav_float")
            with nextgpt.Audio(os.path.join(tmp, "y.bin")) as y:
                np.testing.assert_array_equal(y.samples(), pcm)
            with self.assertRaises(nextgpt.Error) as e:  # AUTO cannot tell the format of ".xyz"
                a.save(os.path.join(tmp, "z.xyz"))
            self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_INVALID_ARGUMENT)
            with self.assertRaises(nextgpt.Error) as e:
                a.save(os.path.join(tmp, "no", "such", "dir.wav"))
            self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_IO)
        with self.assertRaises(ValueError):
            a.encode("mp3")
        with self.assertRaises(nextgpt.Error) as e:
            a.encode(99)
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_INVALID_ARGUMENT)

    def test_video_preprocess_golden(self):
        d, c = case("vision", "video.preprocess", "mandelbrot_h264_24fps_4_5s")
        want = safetensors(os.path.join(d, "expected.safetensors"))["pixels"].astype(np.float32)
        path = os.path.join(d, c["params"]["file"])
        t = nextgpt.video_preprocess(path, clip_rule=nextgpt.ClipRule.PYTORCHVIDEO_0_1_5)
        self.assertEqual((t.dtype, t.shape), (nextgpt.Dtype.F32, (15, 3, 2, 224, 224)))
        np.testing.assert_allclose(t.numpy(), want, atol=c["atol"], rtol=c["rtol"])
        with open(path, "rb") as f:  # the same from memory
            np.testing.assert_array_equal(nextgpt.video_preprocess(f.read(), name="m.mp4").numpy(), t.numpy())
        other = nextgpt.video_preprocess(path, clip_rule=nextgpt.ClipRule.PYTORCHVIDEO_FIXED).numpy()
        self.assertGreater(np.abs(other - want).max(), c["atol"])  # the other clip rule reads other frames

    def test_video_postprocess_golden(self):
        for name in ("b1_f3_16x16", "b2_f2_8x12"):
            d, c = case("video", "video.postprocess", name)
            x = safetensors(os.path.join(d, "inputs.safetensors"))["video"]
            want = safetensors(os.path.join(d, "expected.safetensors"))["frames_u8"]
            for v in (x, nextgpt.Tensor.from_buffer(x, nextgpt.Dtype.F32)):
                u8 = nextgpt.video_postprocess(v)
                self.assertEqual(u8.dtype, nextgpt.Dtype.U8)
                np.testing.assert_array_equal(u8.numpy(), want, name)
        with self.assertRaises(nextgpt.Error) as e:  # not [B, 3, F, H, W]
            nextgpt.video_postprocess(np.zeros((3, 2, 4, 4), np.float32))
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_SHAPE_MISMATCH)

    def test_video_encode_and_save(self):
        import tempfile
        VF, C = nextgpt.VideoFormat, nextgpt.capi
        codecs = {VF.MP4: ("libx264", "mpeg4"), VF.WEBM: ("libvpx-vp9", "libvpx")}
        self.assertEqual(nextgpt.video_codec(), nextgpt.video_codec(VF.MP4))
        self.assertEqual(nextgpt.video_codec(VF.AUTO), nextgpt.video_codec("mp4"))  # AUTO means MP4
        self.assertIsNone(nextgpt.video_codec(17))
        with self.assertRaises(ValueError):
            nextgpt.video_codec("avi")
        rng = np.random.default_rng(2)
        frames = (rng.random((3, 16, 24, 3)) * 255).astype(np.uint8)
        frames[:, :8] = 40  # some flat area
        magic = {VF.MP4: lambda b: b[4:8] == b"ftyp", VF.WEBM: lambda b: b[:4] == b"\x1a\x45\xdf\xa3"}
        for fmt in (VF.MP4, VF.WEBM):
            codec = nextgpt.video_codec(fmt)
            if codec is None:  # this FFmpeg has no encoder for it: the call says so
                with self.assertRaises(nextgpt.Error) as e:
                    nextgpt.video_encode(frames, 8.0, fmt)
                self.assertEqual(e.exception.status, C.NGPT_ERR_UNSUPPORTED)
                continue
            self.assertIn(codec, codecs[fmt])
            data = nextgpt.video_encode(frames, 8.0, fmt)
            self.assertTrue(magic[fmt](data), (fmt, data[:16]))
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "clip." + fmt.name.lower())
                nextgpt.video_save(nextgpt.Tensor.from_buffer(frames, nextgpt.Dtype.U8), path, fps=8)
                with open(path, "rb") as f:
                    self.assertTrue(magic[fmt](f.read()))
                # ImageBind's transform reads it back
                self.assertEqual(nextgpt.video_preprocess(path).shape, (15, 3, 2, 224, 224))
                with self.assertRaises(nextgpt.Error) as e:  # AUTO cannot tell ".avi"
                    nextgpt.video_save(frames, os.path.join(tmp, "clip.avi"))
                self.assertEqual(e.exception.status, C.NGPT_ERR_INVALID_ARGUMENT)
        if nextgpt.video_codec() is None:
            return
        for bad, status in (((frames, 0.0), C.NGPT_ERR_INVALID_ARGUMENT),            # fps out of range
                            ((frames, 1001.0), C.NGPT_ERR_INVALID_ARGUMENT),
                            ((frames[:, :15], 8.0), C.NGPT_ERR_UNSUPPORTED),          # odd height
                            ((frames[:0], 8.0), C.NGPT_ERR_INVALID_ARGUMENT),         # no frames
                            ((frames.astype(np.float32), 8.0), C.NGPT_ERR_DTYPE_MISMATCH),
                            ((frames[0], 8.0), C.NGPT_ERR_SHAPE_MISMATCH)):
            with self.assertRaises(nextgpt.Error) as e:
                nextgpt.video_encode(np.ascontiguousarray(bad[0]), bad[1])
            self.assertEqual(e.exception.status, status, (bad[0].shape, bad[1]))
            self.assertTrue(e.exception.message)


class ExampleTest(unittest.TestCase):
    def test_tokenize_example(self):
        import subprocess
        ex = os.path.join(SRC, "examples", "python", "tokenize_text.py")
        r = subprocess.run([sys.executable, ex, TOK, "Hello [IMG0]"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("decoded: 'Hello [IMG0]'", r.stdout)
        r = subprocess.run([sys.executable, ex, "/nonexistent"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("NGPT_ERR_NOT_FOUND", r.stderr)


class DecoderTest(unittest.TestCase):
    def test_decoder_create_and_children(self):
        ctx = nextgpt.Context(device="cpu")
        dec = nextgpt.Decoder(ctx, os.path.join(GOLDEN, "models", "sd-a"))
        self.assertEqual(dec.kind, nextgpt.DecoderKind.IMAGE)
        self.assertAlmostEqual(dec.vae_scaling_factor, 0.18215, places=6)
        self.assertEqual(dec.sample_rate, 0)  # no vocoder
        with self.assertRaises(nextgpt.Error):
            dec.vocoder(np.zeros((1, 4, 8), np.float32))  # not an audio decoder
        ctx.close()  # closes the decoder first, as the C API requires
        self.assertTrue(dec.closed)

    def test_decoder_compute_dtype_cpu(self):
        """compute_dtype F16 is a CUDA option: the CPU backend refuses it by name."""
        ctx = nextgpt.Context(device="cpu")
        with self.assertRaises(nextgpt.Error) as cm:
            nextgpt.Decoder(ctx, os.path.join(GOLDEN, "models", "sd-a"), compute_dtype=nextgpt.Dtype.F16)
        self.assertEqual(cm.exception.status, nextgpt.capi.NGPT_ERR_UNSUPPORTED)
        self.assertIn("compute_dtype", str(cm.exception))
        ctx.close()

    def test_decoder_bf16_cpu(self):
        """compute_dtype BF16 on the CPU: the UNet and VAE within BF16 rounding of F32, not equal."""
        ctx = nextgpt.Context(device="cpu")
        d = os.path.join(GOLDEN, "models", "sd-a")
        f, h = nextgpt.Decoder(ctx, d), nextgpt.Decoder(ctx, d, compute_dtype=nextgpt.Dtype.BF16)
        rng = np.random.default_rng(3)
        x = rng.uniform(-1, 1, (2, 4, 16, 16)).astype(np.float32)
        e = rng.uniform(-1, 1, (2, 77, 32)).astype(np.float32)
        t = np.array([981, 500], np.int64)
        a, b = f.unet(x, t, e).numpy(), h.unet(x, t, e).numpy()
        r = np.linalg.norm(b - a) / np.linalg.norm(a)
        self.assertTrue(0 < r < 0.05, r)
        a, b = f.vae_decode(x[:1]).numpy(), h.vae_decode(x[:1]).numpy()
        r = np.linalg.norm(b - a) / np.linalg.norm(a)
        self.assertTrue(0 < r < 0.05, r)
        ctx.close()

    def test_text_encoder(self):
        """clip-a (tests/golden/models) through the text API, against the clip.* golden cases."""
        ctx = nextgpt.Context(device="cpu")
        clip = os.path.join(SRC, "tests", "golden", "models", "clip-a")
        dec = nextgpt.Decoder(ctx, clip, kind=nextgpt.DecoderKind.IMAGE)
        self.assertEqual((dec.text_max_length, dec.text_hidden_size), (77, 32))
        case = os.path.join(SRC, "tests", "golden", "vision", "clip.tokenize", "photo_of_a_cat")
        with open(os.path.join(case, "case.json"), encoding="utf-8") as f:
            text = json.load(f)["params"]["text"]
        ids = dec.tokenize_text(text)
        want = safetensors(os.path.join(case, "expected.safetensors"))["input_ids"]
        self.assertEqual(ids, [int(x) for x in np.asarray(want).reshape(-1)])
        a = dec.encode_text(text).numpy()
        b = dec.encode_text_ids(np.array([ids], np.int64)).numpy()
        self.assertEqual(a.shape, (1, 77, 32))
        np.testing.assert_array_equal(a, b)
        with self.assertRaises(nextgpt.Error):
            dec.encode_text_ids(np.zeros((1, 78), np.int64))
        ctx.close()

    def test_generate_latents_and_img2img(self):
        """latents (the caller's noise: the seed is then unused) and image-to-image from
        vae_encode's latents (init_latents, strength): the steps that run, and the errors."""
        ctx = nextgpt.Context(device="cpu")
        dec = nextgpt.Decoder(ctx, os.path.join(GOLDEN, "models", "sd-a"))
        rng = np.random.default_rng(5)
        c, u = (rng.uniform(-1, 1, (1, 77, 32)).astype(np.float32) for _ in range(2))
        noise = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
        picture = rng.uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)
        init = dec.vae_encode(picture).numpy() * dec.vae_scaling_factor
        common = dict(steps=4, height=64, width=64, latents=noise)
        a = dec.generate(c, u, seed=1, **common).numpy()
        np.testing.assert_array_equal(a, dec.generate(c, u, seed=2, **common).numpy())
        totals = []
        b = dec.generate(c, u, init_latents=init, strength=0.5, on_step=lambda step, total: totals.append(total),
                         **common).numpy()
        self.assertEqual(totals, [3, 3, 3])  # int(4 x 0.5) steps, the last of PNDM's 5 timesteps for 4
        self.assertEqual(b.shape, a.shape)
        self.assertFalse(np.array_equal(a, b))
        np.testing.assert_array_equal(b, dec.generate(c, u, init_latents=init, strength=0.5, **common).numpy())
        totals.clear()
        dec.generate(c, u, init_latents=init, on_step=lambda step, total: totals.append(total), **common)
        self.assertEqual(totals[-1], 4)  # strength None: the library's default 0.8 (int(3.2) = 3, + PNDM's 1)
        with self.assertRaises(nextgpt.Error) as cm:
            dec.generate(c, u, init_latents=init, strength=0.1, **common)
        self.assertIn("runs no step", cm.exception.message)
        with self.assertRaises(nextgpt.Error) as cm:
            dec.generate(c, u, init_latents=init[:, :, :4], strength=0.5, **common)
        self.assertEqual(cm.exception.status, nextgpt.capi.NGPT_ERR_SHAPE_MISMATCH)
        self.assertIn("init_latents", cm.exception.message)
        ctx.close()

    def test_clap_text_encoder(self):
        """clap-a (AudioLDM's CLAP text branch) through the text API, against the clap.* golden cases."""
        ctx = nextgpt.Context(device="cpu")
        clap = os.path.join(SRC, "tests", "golden", "models", "clap-a")
        dec = nextgpt.Decoder(ctx, clap)
        self.assertEqual((dec.text_max_length, dec.text_hidden_size), (512, 24))
        case = os.path.join(SRC, "tests", "golden", "audio", "clap.text_encoder", "text_dog_barking_512")
        with open(os.path.join(case, "case.json"), encoding="utf-8") as f:
            c = json.load(f)
        want = np.asarray(safetensors(os.path.join(case, "expected.safetensors"))["prompt_embeds"])
        a = dec.encode_text(c["params"]["text"]).numpy()
        self.assertEqual(a.shape, (1, 24))
        np.testing.assert_allclose(a, want, atol=c["atol"], rtol=c["rtol"])
        ids = dec.tokenize_text(c["params"]["text"])
        mask = [int(i < ids.index(2) + 1) for i in range(len(ids))]
        b = dec.encode_text_masked(np.array([ids], np.int64), np.array([mask], np.int64)).numpy()
        np.testing.assert_array_equal(a, b)
        ctx.close()


class EncoderTest(unittest.TestCase):
    """ImageBind on the golden model imagebind-a: pixels, fbank clips and a video file."""

    @classmethod
    def setUpClass(cls):
        cls.ctx = nextgpt.Context(device="cpu")
        cls.enc = nextgpt.Encoder(cls.ctx, os.path.join(GOLDEN, "models", "imagebind-a"))

    @classmethod
    def tearDownClass(cls):
        cls.ctx.close()

    def test_encode_pixels_golden(self):
        for name in ("image_b1", "random_b2", "uniform_b1"):
            d, c = case("vision", "imagebind.vision", name)
            x = safetensors(os.path.join(d, "inputs.safetensors"))["pixels"]
            want = safetensors(os.path.join(d, "expected.safetensors"))["embedding"]
            got = self.enc.encode_pixels(x)
            self.assertEqual(got.shape, want.shape)
            np.testing.assert_allclose(got.numpy(), want, atol=c["atol"], rtol=c["rtol"], err_msg=name)
        # videos of clips ([N, S, 3, T, 224, 224], F16 input converted): our cases in tests/golden
        d = os.path.join(SRC, "tests", "golden", "vision", "imagebind.video", "clips2_t2_b1")
        with open(os.path.join(d, "case.json")) as f:
            c = json.load(f)
        x = safetensors(os.path.join(d, "inputs.safetensors"))["pixels"]
        want = safetensors(os.path.join(d, "expected.safetensors"))["embedding"]
        np.testing.assert_allclose(self.enc.encode_pixels(x).numpy(), want, atol=c["atol"], rtol=c["rtol"])
        with self.assertRaises(nextgpt.Error) as e:
            self.enc.encode_pixels(np.zeros((1, 3, 200, 224), np.float32))
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_SHAPE_MISMATCH)
        self.assertIn("224", e.exception.message)

    def test_encode_fbank_golden(self):
        for name in ("random_b1", "random_b2", "wav_b1"):
            d, c = case("vision", "imagebind.audio", name)
            x = safetensors(os.path.join(d, "inputs.safetensors"))["fbank"]
            want = safetensors(os.path.join(d, "expected.safetensors"))["embedding"]
            np.testing.assert_allclose(self.enc.encode_fbank(x).numpy(), want, atol=c["atol"], rtol=c["rtol"],
                                       err_msg=name)
            one = self.enc.encode_fbank(nextgpt.Tensor.from_buffer(x[0], nextgpt.Dtype.F32))  # [S, 1, 128, 204]
            self.assertEqual(one.shape, (1, want.shape[1]))
            np.testing.assert_allclose(one.numpy()[0], want[0], atol=c["atol"], rtol=c["rtol"])
        # from a file: Audio.preprocess + encode_fbank is encode_audio
        d, c = case("vision", "audio.fbank", "mono16k_3s")
        with nextgpt.Audio(os.path.join(d, "input.wav")) as a:
            np.testing.assert_array_equal(self.enc.encode_fbank(a.preprocess()).numpy(), self.enc.encode_audio(a).numpy())
        with self.assertRaises(nextgpt.Error) as e:
            self.enc.encode_fbank(np.zeros((3, 1, 128, 100), np.float32))
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_SHAPE_MISMATCH)
        vision_only = nextgpt.Encoder(self.ctx, os.path.join(GOLDEN, "models", "imagebind-a"), modalities="image")
        with self.assertRaises(nextgpt.Error) as e:
            vision_only.encode_fbank(np.zeros((3, 1, 128, 204), np.float32))
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_UNSUPPORTED)
        vision_only.close()

    def test_encode_video_file(self):
        d, c = case("vision", "video.preprocess", "mandelbrot_h264_24fps_4_5s")
        path = os.path.join(d, c["params"]["file"])
        got = self.enc.encode_video_file(path)
        self.assertEqual(got.shape, (1, self.enc.embed_dim))
        clips = nextgpt.video_preprocess(path).numpy()  # the same as video_preprocess + the vision branch
        np.testing.assert_allclose(got.numpy(), self.enc.encode_pixels(clips[None]).numpy(), atol=1e-6, rtol=1e-5)
        with self.assertRaises(nextgpt.Error) as e:
            self.enc.encode_video_file(os.path.join(d, "missing.mp4"))
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_NOT_FOUND)
        self.assertIn("missing.mp4", e.exception.message)


class ProjectorTest(unittest.TestCase):
    def test_input_and_input_sum_golden(self):
        ctx = nextgpt.Context(device="cpu")
        for name in ("projector-b_n3", "delta_n2_pt"):
            d = os.path.join(SRC, "tests", "golden", "vision", "projector.input", name)
            with open(os.path.join(d, "case.json")) as f:
                c = json.load(f)
            pj = nextgpt.Projector(ctx, os.path.normpath(os.path.join(d, c["model"])), input=True)
            x = safetensors(os.path.join(d, "inputs.safetensors"))["feature"]
            want = safetensors(os.path.join(d, "expected.safetensors"))["embeds"]
            np.testing.assert_allclose(pj.input(x).numpy(), want, atol=c["atol"], rtol=c["rtol"])
            # each item projected (its bias included), then summed: not llama_proj(sum of items)
            total = pj.input_sum(x).numpy()
            self.assertEqual(total.shape, (1, pj.llm_hidden_size))
            np.testing.assert_allclose(total[0], want.sum(0), atol=1e-5 * len(x), rtol=1e-5)
            self.assertGreater(np.abs(total[0] - pj.input(x.sum(0, keepdims=True)).numpy()[0]).max(), 1e-3)
            with self.assertRaises(nextgpt.Error) as e:
                pj.input_sum(np.zeros((2, pj.input_dim + 1), np.float32))
            self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_SHAPE_MISMATCH)
            pj.close()
        ctx.close()

    @unittest.skipUnless(os.path.isdir(os.environ.get("NGPT_TINY_BUNDLE", "")), "the tiny bundle is not built")
    def test_output_projector_facts(self):
        """output_dim, d_model, nhead (and the token counts) as the tiny bundle's config.json states them."""
        M = nextgpt.Modality
        tiny = os.environ["NGPT_TINY_BUNDLE"]
        with open(os.path.join(tiny, "projectors", "config.json")) as f:
            cfg = json.load(f)["output_projectors"]
        ctx = nextgpt.Context(device="cpu")
        pj = nextgpt.Projector(ctx, os.path.join(tiny, "projectors"), outputs=[M.IMAGE, M.AUDIO])
        for m in (M.IMAGE, M.AUDIO):
            c = cfg[m.name.lower()]
            self.assertEqual((pj.output_dim(m), pj.d_model(m), pj.nhead(m), pj.num_input_tokens(m),
                              pj.num_output_tokens(m)),
                             (c["out_dim"], c["d_model"], c["nhead"], c["num_input_tokens"], c["num_output_tokens"]))
        for m in (M.VIDEO, M.TEXT):  # not loaded / no output projector: 0
            self.assertEqual((pj.output_dim(m), pj.d_model(m), pj.nhead(m)), (0, 0, 0))
        ctx.close()


class BackboneTest(unittest.TestCase):
    """The low-level language-model API (eval, logits, hidden, generate, embed_tokens, the lent
    tokenizer) against the llm golden cases of llama-a (F32) and nextgpt-a (F16, the 38 tokens)."""

    @classmethod
    def setUpClass(cls):
        cls.ctx = nextgpt.Context(device="cpu")
        cls.bbs = {m: nextgpt.Backbone(cls.ctx, os.path.join(GOLDEN, "models", m)) for m in ("llama-a", "nextgpt-a")}

    @classmethod
    def tearDownClass(cls):
        cls.ctx.close()

    def cases(self, stage):
        root = os.path.join(GOLDEN, "llm", stage)
        for name in sorted(os.listdir(root)):
            d, c = case("llm", stage, name)
            yield (name, c, self.bbs[os.path.basename(c["model"])], safetensors(os.path.join(d, "inputs.safetensors")),
                   safetensors(os.path.join(d, "expected.safetensors")))

    def test_facts(self):
        for m, bb in self.bbs.items():
            with open(os.path.join(GOLDEN, "models", m, "config.json")) as f:
                cfg = json.load(f)
            self.assertEqual((bb.n_vocab, bb.n_embd, bb.n_layer, bb.n_ctx),
                             (cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"],
                              cfg["max_position_embeddings"]), m)

    def test_logits_golden(self):
        A = nextgpt.OutputMode
        for name, c, bb, inp, exp in self.cases("llama.logits"):
            s = bb.session(n_ctx=256)
            self.assertIsNone(s.logits())  # before any eval
            ids = inp["ids"].tolist()
            s.eval(ids, output=A.ALL)
            self.assertEqual(s.n_past, len(ids))
            lg, hd = s.logits(), s.hidden()
            self.assertEqual((lg.shape, hd.shape), (exp["logits"].shape, exp["hidden"].shape))
            np.testing.assert_allclose(lg.numpy(), exp["logits"], atol=c["atol"], rtol=c["rtol"], err_msg=name)
            np.testing.assert_allclose(hd.numpy(), exp["hidden"], atol=c["atol"], rtol=c["rtol"], err_msg=name)
            # the same prompt in two evals, the first NONE (no outputs), the second LAST (the last row)
            s.reset()
            self.assertEqual(s.n_past, 0)
            if len(ids) > 1:
                s.eval(ids[:-1], output=A.NONE)
                self.assertIsNone(s.logits())
                self.assertIsNone(s.hidden())
            s.eval(ids[-1:])
            np.testing.assert_allclose(s.logits().numpy(), exp["logits"][-1:], atol=c["atol"], rtol=c["rtol"])
            np.testing.assert_allclose(s.hidden().numpy(), exp["hidden"][-1:], atol=c["atol"], rtol=c["rtol"])
            s.close()

    def test_logits_embeds_golden(self):
        for name, c, bb, inp, exp in self.cases("llama.logits_embeds"):
            s = bb.session(n_ctx=64)
            for rows in (inp["embeds"], nextgpt.Tensor.from_buffer(inp["embeds"], nextgpt.Dtype.F32)):
                s.reset()
                s.eval(embeds=rows, output=nextgpt.OutputMode.ALL)
                np.testing.assert_allclose(s.logits().numpy(), exp["logits"], atol=c["atol"], rtol=c["rtol"],
                                           err_msg=name)
                np.testing.assert_allclose(s.hidden().numpy(), exp["hidden"], atol=c["atol"], rtol=c["rtol"])
            s.close()

    def test_embed_tokens_and_mixed_batch(self):
        for m, bb in self.bbs.items():
            table = safetensors(os.path.join(GOLDEN, "models", m, "model.safetensors"))["model.embed_tokens.weight"]
            ids = [1, 5, 3, bb.n_vocab - 1, 0, 17]
            rows = bb.embed_tokens(ids)
            self.assertEqual((rows.dtype, rows.shape), (nextgpt.Dtype.F32, (len(ids), bb.n_embd)))
            np.testing.assert_array_equal(rows.numpy(), table[ids].astype(np.float32))  # F16 widened exactly
            self.assertEqual(bb.embed_tokens([]).shape, (0, bb.n_embd))
            with self.assertRaises(nextgpt.Error) as e:
                bb.embed_tokens([3, bb.n_vocab])
            self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_INVALID_ARGUMENT)
            self.assertIn("position 1", e.exception.message)
            # a batch of ids and embedding rows (is_embed) computes what the ids alone do
            a, b = bb.session(n_ctx=32), bb.session(n_ctx=32)
            a.eval(ids, output=nextgpt.OutputMode.ALL)
            mask = [i % 2 == 1 for i in range(len(ids))]
            junk = [i if not k else 2 for i, k in zip(ids, mask)]  # ids under embedding rows are not read
            b.eval(ids=junk, embeds=rows, is_embed=mask, output=nextgpt.OutputMode.ALL)
            np.testing.assert_allclose(b.logits().numpy(), a.logits().numpy(), atol=1e-5, rtol=1e-5)
            b.reset()
            with self.assertRaises(nextgpt.Error) as e:  # both without is_embed
                b.eval(ids=ids, embeds=rows)
            self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_INVALID_ARGUMENT)
            self.assertEqual(b.n_past, 0)

    def test_eval_errors_truncate_reset(self):
        bb = self.bbs["llama-a"]
        s = bb.session(n_ctx=16)
        self.assertEqual((s.n_ctx, bb.session().n_ctx), (16, bb.n_ctx))
        ids = [1, 20, 30, 40, 50, 60, 70, 80]
        s.eval(ids, output=nextgpt.OutputMode.ALL)
        full = s.logits().numpy()
        s.truncate(3)  # keep the first 3 positions; the outputs are gone
        self.assertEqual(s.n_past, 3)
        self.assertIsNone(s.logits())
        s.eval(ids[3:], output=nextgpt.OutputMode.ALL)  # re-run the rest on the kept cache
        np.testing.assert_allclose(s.logits().numpy(), full[3:], atol=1e-5, rtol=1e-5)
        with self.assertRaises(nextgpt.Error) as e:
            s.truncate(s.n_past + 1)
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_INVALID_ARGUMENT)
        self.assertIn("outside", e.exception.message)
        with self.assertRaises(ValueError):
            s.truncate(2 ** 31)
        n = s.n_past
        for bad in (dict(ids=[1, bb.n_vocab]),            # an id out of range
                    dict(ids=list(range(1, 10)))):          # past n_ctx 16
            with self.assertRaises(nextgpt.Error) as e:
                s.eval(**bad)
            self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_INVALID_ARGUMENT)
            self.assertEqual(s.n_past, n)  # validated before the cache is touched
        with self.assertRaises(nextgpt.Error) as e:
            s.eval([])
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_INVALID_ARGUMENT)
        # what the C batch cannot check (it carries no lengths) is checked here
        with self.assertRaises(ValueError):
            s.eval()
        with self.assertRaises(ValueError):
            s.eval(embeds=np.zeros((2, bb.n_embd + 1), np.float32))
        with self.assertRaises(ValueError):
            s.eval(ids=[1, 2], embeds=np.zeros((3, bb.n_embd), np.float32), is_embed=[0, 1, 1])
        with self.assertRaises(ValueError):
            s.eval(ids=[1, 2], embeds=np.zeros((2, bb.n_embd), np.float32), is_embed=[0])
        s.reset()
        self.assertEqual((s.n_past, s.logits()), (0, None))
        with self.assertRaises(nextgpt.Error) as e:  # nothing to start from
            s.generate_greedy()
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_INVALID_ARGUMENT)
        self.assertIn("no logits", e.exception.message)

    def test_generate_greedy_golden(self):
        for name, c, bb, inp, exp in self.cases("llama.generate_greedy"):
            p = c["params"]
            s = bb.session(n_ctx=64)
            prompt = dict(ids=inp["ids"].tolist()) if "ids" in inp else dict(embeds=inp["embeds"])
            s.eval(**prompt)
            n0 = s.n_past
            seen = []
            g = s.generate_greedy(p["max_new_tokens"], p["stop_ids"], on_token=seen.append, hidden=True)
            want = exp["ids"].tolist()
            self.assertEqual((g.ids, seen, g.error, g.cancelled), (want, want, None, False), name)
            np.testing.assert_allclose(g.hidden, exp["hidden"], atol=c["atol"], rtol=c["rtol"], err_msg=name)
            self.assertEqual(s.n_past, n0 + len(want) - 1)  # the last (a stop id, or the last allowed) not fed back
            # generate with temperature 0 is the same greedy decoding; without hidden rows
            s.truncate(n0 - 1)
            s.eval(**{k: v[-1:] for k, v in prompt.items()})
            g2 = s.generate(p["max_new_tokens"], p["stop_ids"], temperature=0.0)
            self.assertEqual((g2.ids, g2.hidden), (want, None), name)
            s.close()

    def test_generate_sampled_and_callbacks(self):
        bb = self.bbs["nextgpt-a"]
        s = bb.session(n_ctx=64)
        prompt = [1, 100, 200, 300, 400]

        def run(**kw):
            s.reset()
            s.eval(prompt)
            return s.generate(max_new_tokens=12, **kw)
        a = run(temperature=1.0, top_p=1.0, seed=11)
        self.assertEqual(len(a.ids), 12)
        self.assertEqual(run(temperature=1.0, top_p=1.0, seed=11).ids, a.ids)  # reproducible for a seed
        self.assertNotEqual([run(temperature=1.0, top_p=1.0, seed=k).ids for k in range(12, 16)], [a.ids] * 4)
        greedy = run(temperature=0.0).ids
        self.assertEqual(run(temperature=1.0, top_k=1, seed=3).ids, greedy)  # top_k 1 is the argmax
        # on_token returning False stops after that token: partial ids, error CANCELLED
        seen = []

        def third_stops(t):
            seen.append(t)
            return len(seen) < 3
        c = run(on_token=third_stops, temperature=0.0)
        self.assertEqual(seen, greedy[:3])
        self.assertTrue(c.cancelled)
        self.assertEqual(c.error.status, nextgpt.capi.NGPT_ERR_CANCELLED)
        self.assertEqual(c.ids, greedy[:3])
        self.assertEqual(s.n_past, len(prompt) + 2)  # the cancelling token is not fed back
        with self.assertRaises(ZeroDivisionError):  # an exception in on_token comes out of the call
            run(on_token=lambda t: 1 / 0)
        with self.assertRaises(RuntimeError):  # the session cannot be closed by its own callback
            run(on_token=lambda t: s.close())
        self.assertFalse(s.closed)
        # the context filling up ends it early, with the tokens so far
        short = bb.session(n_ctx=len(prompt) + 3)
        short.eval(prompt)
        f = short.generate_greedy(10, hidden=True)
        self.assertEqual(f.error.status, nextgpt.capi.NGPT_ERR_INVALID_ARGUMENT)
        self.assertFalse(f.cancelled)
        self.assertEqual(f.ids, greedy[:len(f.ids)])
        self.assertEqual(f.hidden.shape, (len(f.ids), bb.n_embd))
        self.assertEqual(short.n_past, len(prompt) + 3)
        with self.assertRaises(ValueError):
            s.generate(max_new_tokens=2 ** 31)
        with self.assertRaises(nextgpt.Error) as e:  # a sampling field out of range
            run(temperature=1.0, top_p=1.5)
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_INVALID_ARGUMENT)

    def test_lent_tokenizer(self):
        """Backbone.tokenizer: the backbone's own, lent: the same object while referenced, never
        freed by Python, closed with the backbone (which it keeps alive)."""
        lib = nextgpt.lib
        bb = nextgpt.Backbone(self.ctx, os.path.join(GOLDEN, "models", "nextgpt-a"))
        tok = bb.tokenizer
        self.assertIs(bb.tokenizer, tok)
        with nextgpt.Tokenizer(os.path.join(GOLDEN, "models", "nextgpt-a")) as own:
            text = "hello [IMG0] world"
            self.assertEqual(tok.encode(text), own.encode(text))
            self.assertEqual((tok.vocab_size, tok.piece_to_id("[IMG0]")), (own.vocab_size, own.piece_to_id("[IMG0]")))
        want = tok.encode("hi there")
        freed = []
        real = {n: getattr(lib, n) for n in ("ngpt_tokenizer_free", "ngpt_backbone_free")}
        for n, f in real.items():
            setattr(lib, n, lambda p, n=n, f=f: (freed.append(n), f(p)))
        try:
            tok.close()  # only forgets it
            self.assertTrue(tok.closed)
            self.assertEqual(bb.tokenizer.bos_id, 1)  # a new lent handle
            tok = bb.tokenizer
            owner = weakref.ref(bb)
            del bb
            gc.collect()
            self.assertIsNotNone(owner())  # the tokenizer keeps the backbone alive
            self.assertEqual(tok.encode("hi there"), want)
            self.assertEqual(freed, [])
            owner().close()  # the backbone closes: its tokenizer with it, freed by the library
            self.assertTrue(tok.closed)
            with self.assertRaises(ValueError):
                tok.encode("hi")
        finally:
            for n, f in real.items():
                setattr(lib, n, f)
        self.assertEqual(freed, ["ngpt_backbone_free"])
        bare = nextgpt.Backbone(self.ctx, os.path.join(GOLDEN, "models", "llama-a"))
        self.assertIsNotNone(bare.tokenizer)
        bare.close()


class DecoderVaeEncodeTest(unittest.TestCase):
    def test_vae_encode_golden(self):
        ctx = nextgpt.Context(device="cpu")
        dec = nextgpt.Decoder(ctx, os.path.join(GOLDEN, "models", "sd-a"))
        for name in ("sd_b1_32x32", "sd_b2_24x40"):
            d = os.path.join(SRC, "tests", "golden", "vision", "vae.encode", name)
            with open(os.path.join(d, "case.json")) as f:
                c = json.load(f)
            x = safetensors(os.path.join(d, "inputs.safetensors"))["image"]
            exp = safetensors(os.path.join(d, "expected.safetensors"))
            mean, logvar = dec.vae_encode(x, logvar=True)
            np.testing.assert_allclose(mean.numpy(), exp["mean"], atol=c["atol"], rtol=c["rtol"], err_msg=name)
            np.testing.assert_allclose(logvar.numpy(), exp["logvar"], atol=c["atol"], rtol=c["rtol"], err_msg=name)
            only = dec.vae_encode(nextgpt.Tensor.from_buffer(x, nextgpt.Dtype.F32))
            np.testing.assert_array_equal(only.numpy(), mean.numpy())  # logvar optional, deterministic
        # decode(mean * scaling / scaling): back to the image's size
        self.assertEqual(dec.vae_decode(mean.numpy()).shape, (2, 3, 24, 40))
        with self.assertRaises(nextgpt.Error) as e:
            dec.vae_encode(np.zeros((1, 3, 30, 32), np.float32))
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_SHAPE_MISMATCH)
        self.assertIn("multiples of 8", e.exception.message)
        ctx.close()

    def test_image_latents_golden(self):
        """image_latents (a picture -> img2img's init_latents) against the sd.image_latents cases,
        from a path, an Image and a PIL image; the sample's noise from the seed; then generate
        with the size taken from them."""
        ctx = nextgpt.Context(device="cpu")
        dec = nextgpt.Decoder(ctx, os.path.join(GOLDEN, "models", "sd-a"))
        d = os.path.join(SRC, "tests", "golden", "vision", "sd.image_latents", "sd_37x29_cut")
        with open(os.path.join(d, "case.json")) as f:
            c = json.load(f)
        exp = safetensors(os.path.join(d, "expected.safetensors"))["latents"]
        png = os.path.join(d, "input.png")
        mode = dec.image_latents(png, sample=False).numpy()
        np.testing.assert_allclose(mode, exp, atol=c["atol"], rtol=c["rtol"])
        with nextgpt.Image(png) as img:
            np.testing.assert_array_equal(dec.image_latents(img, sample=False).numpy(), mode)
            a, b = (dec.image_latents(img, seed=s).numpy() for s in (3, 3))
            np.testing.assert_array_equal(a, b)
            self.assertFalse(np.array_equal(a, dec.image_latents(img, seed=4).numpy()))
            self.assertFalse(np.array_equal(a, mode))
            if PILImage is not None:
                np.testing.assert_array_equal(dec.image_latents(img.to_pil(), seed=3).numpy(), a)
            np.testing.assert_array_equal(dec.image_latents(img.pixels(), seed=3).numpy(), a)  # numpy uint8
            with self.assertRaises(TypeError):  # float pixels are not RGB8 (Image.from_tensor takes those)
                dec.image_latents(img.pixels().astype(np.float32))
        out = dec.generate(np.zeros((1, 77, 32), np.float32), steps=2, guidance_scale=1.0, init_latents=a,
                           strength=0.5).numpy()
        self.assertEqual(out.shape, (1, 24, 32, 3))  # 37x29 cut to 32x24
        with self.assertRaises(nextgpt.Error) as e:
            dec.image_latents(nextgpt.Image.from_rgb8(bytes(7 * 7 * 3), 7, 7))
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_INVALID_ARGUMENT)
        self.assertIn("multiples of 8", e.exception.message)
        ctx.close()


    def test_video_latents_golden(self):
        """video_latents (frames -> video-to-video's init_latents) against a zeroscope.video_latents
        case, uint8 and float frames alike; then generate with the size and frames from them."""
        ctx = nextgpt.Context(device="cpu")
        dec = nextgpt.Decoder(ctx, os.path.join(GOLDEN, "models", "zeroscope-a"))
        d = os.path.join(SRC, "tests", "golden", "video", "zeroscope.video_latents", "zs_3x32x48")
        with open(os.path.join(d, "case.json")) as f:
            c = json.load(f)
        frames = np.asarray(safetensors(os.path.join(d, "inputs.safetensors"))["frames"])
        self.assertEqual((frames.dtype, frames.shape), (np.uint8, (3, 32, 48, 3)))
        exp = safetensors(os.path.join(d, "expected.safetensors"))["latents"]
        mode = dec.video_latents(frames, sample=False).numpy()
        np.testing.assert_allclose(mode, exp, atol=c["atol"], rtol=c["rtol"])
        np.testing.assert_array_equal(dec.video_latents(frames.astype(np.float32) / np.float32(255),
                                                        sample=False).numpy(), mode)
        a = dec.video_latents(frames, seed=2).numpy()
        np.testing.assert_array_equal(a, dec.video_latents(frames, seed=2).numpy())
        self.assertFalse(np.array_equal(a, mode))
        out = dec.generate(np.zeros((1, 77, 48), np.float32), steps=2, guidance_scale=1.0, init_latents=a,
                           strength=0.5).numpy()
        self.assertEqual(out.shape, (1, 3, 3, 32, 48))
        with self.assertRaises(nextgpt.Error) as e:
            dec.video_latents(frames[:, :30])
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_SHAPE_MISMATCH)
        ctx.close()


TINY = os.environ.get("NGPT_TINY_BUNDLE", "")


@unittest.skipUnless(os.path.isdir(TINY), "the tiny bundle (NGPT_TINY_BUNDLE) is not built")
class EdgesTest(unittest.TestCase):
    """The ABI boundary where ctypes alone would be wrong: text with NUL bytes, integers that
    would wrap, misspelt parameters, handles closed or re-entered while a call uses them,
    tensors of zero size, rank 0, F16/BF16."""

    def setUp(self):
        self.ctx = nextgpt.Context(device="cpu")

    def tearDown(self):
        self.ctx.close()

    def test_text_with_nul_bytes(self):
        bb = nextgpt.Backbone(self.ctx, os.path.join(TINY, "llm"))
        bb_tok = nextgpt.Tokenizer(os.path.join(TINY, "llm"))
        nul = bb_tok.piece_to_id("<0x00>")
        for seed in range(64):  # a sampled answer holding the byte token <0x00>
            s = bb.session(n_ctx=256)
            pieces = []
            r = s.turn("hi", max_new_tokens=60, temperature=1.0, top_p=1.0, seed=seed, on_text=pieces.append)
            s.close()
            if nul in r.ids:
                break
        self.assertIn(nul, r.ids, "no seed of 64 sampled <0x00>")
        self.assertIn("\x00", r.text)
        self.assertEqual("".join(pieces), r.text)  # streamed whole, NULs included
        bb_tok.close()

    def test_params_checked(self):
        cfg = os.path.join(GOLDEN, "models", "sd-a", "scheduler", "scheduler_config.json")
        with self.assertRaises(TypeError):
            nextgpt.Scheduler(cfg, solver_ordr=3)  # misspelt: no longer a silent attribute
        with self.assertRaises(TypeError):
            nextgpt.Scheduler(cfg, struct_size=8)
        with self.assertRaises(ValueError):
            nextgpt.Scheduler(cfg, solver_order=2 ** 32 + 2)
        with nextgpt.Scheduler(cfg) as s:
            with self.assertRaises(ValueError):
                s.set_timesteps(2 ** 32 + 10)  # was 10 steps
        bb = nextgpt.Backbone(self.ctx, os.path.join(TINY, "llm"))
        with self.assertRaises(ValueError):
            bb.session(n_ctx=64).turn("hi", max_new_tokens=2 ** 32 + 3)
        with self.assertRaises(ValueError):
            nextgpt.Image.from_rgb8(bytes(300), 10, 10, stride=-2 ** 31)  # was a crash
        with self.assertRaises(ValueError):
            nextgpt.Tensor.from_buffer(b"", nextgpt.Dtype.I32, shape=(0, 2 ** 64 + 2))

    def test_tensor_shapes_and_dtypes(self):
        z = nextgpt.Tensor.from_buffer(np.zeros((2, 0), np.float32), nextgpt.Dtype.F32)
        self.assertEqual((z.shape, z.tolist(), z.numpy().shape), ((2, 0), [[], []], (2, 0)))
        r0 = nextgpt.Tensor.from_buffer(np.array(2.5, np.float32), nextgpt.Dtype.F32)
        self.assertEqual((r0.shape, r0.tolist()), ((), 2.5))
        h = nextgpt.Tensor.from_buffer(np.array([1.5, -2.0], np.float16), nextgpt.Dtype.F16)
        self.assertEqual(h.tolist(), [1.5, -2.0])
        b = nextgpt.Tensor.from_buffer(np.array([[0x3FC0, 0xC020]], np.uint16), nextgpt.Dtype.BF16)
        self.assertEqual(b.tolist(), [[1.5, -2.5]])

    def test_projector_output_2d_tensor(self):
        M = nextgpt.Modality
        with self.assertRaises(ValueError):  # TEXT's bit is the input projector's
            nextgpt.Projector(self.ctx, os.path.join(TINY, "projectors"), outputs=[M.TEXT])
        pj = nextgpt.Projector(self.ctx, os.path.join(TINY, "projectors"), outputs=[M.IMAGE])
        n, w = pj.num_input_tokens(M.IMAGE), pj.llm_hidden_size
        rng = np.random.default_rng(4)
        h, e = (rng.standard_normal((n, w)).astype(np.float32) for _ in range(2))
        want = pj.output(M.IMAGE, h, e).numpy()
        ht, et = (nextgpt.Tensor.from_buffer(x, nextgpt.Dtype.F32) for x in (h, e))
        self.assertTrue((pj.output(M.IMAGE, ht, et).numpy() == want).all())

    def test_in_use_while_a_call_runs(self):
        M = nextgpt.Modality
        cat = os.path.join(SRC, "data", "tiny", "cat.jpg")
        pl = nextgpt.Pipeline(self.ctx, TINY)
        img = nextgpt.Image(cat)

        def close_media(kind, *a):
            if kind == nextgpt.PipelineEventKind.ENCODE:
                img.close()  # the turn is reading it
        with self.assertRaises(RuntimeError):
            pl.turn("x", media=[img], on_event=close_media, max_new_tokens=2)
        self.assertFalse(img.closed)

        def release(kind, m, *a):
            if kind == nextgpt.PipelineEventKind.DENOISE:
                pl.release_decoder(m)  # frees the decoder the turn is using
        with self.assertRaises((RuntimeError, nextgpt.Error)):
            pl.turn("draw", force=[M.IMAGE], steps=2, max_new_tokens=2, on_event=release)
        self.assertTrue(pl.is_test_model)  # a getter inside a call is fine; after it, calls are too
        pl.release_decoder(M.IMAGE)
        r = pl.turn("draw", media=[img], force=[M.IMAGE], steps=1, max_new_tokens=2)
        self.assertTrue(r.outputs and r.outputs[0].ok)
        # a tensor a call is using cannot be closed by its callback
        pj = nextgpt.Projector(self.ctx, os.path.join(TINY, "projectors"), outputs=[M.IMAGE])
        hid = np.zeros((pj.num_input_tokens(M.IMAGE), pj.llm_hidden_size), np.float32)
        cond = pj.output(M.IMAGE, hid, hid)
        dec = nextgpt.Decoder(self.ctx, os.path.join(TINY, "decoders", "image"))
        with self.assertRaises(RuntimeError):
            dec.generate(cond, steps=2, on_step=lambda i, n: cond.close())
        self.assertFalse(cond.closed)
        with self.assertRaises(RuntimeError):  # nor may it call its own decoder again
            dec.generate(cond, steps=2, on_step=lambda i, n: dec.generate(cond, steps=1))
        self.assertEqual(dec.generate(cond, steps=1).shape, (1, 64, 64, 3))
        img.close()


def own_greedy(ctx, prompt, n):
    """Greedy ids of the tiny bundle's language model loaded on its own."""
    with nextgpt.Backbone(ctx, os.path.join(TINY, "llm")) as bb:
        s = bb.session(n_ctx=32)
        s.eval(prompt)
        return s.generate_greedy(n).ids


class StagesTest(unittest.TestCase):
    """Encoder, Projector, Backbone/Session, Decoder.generate, Image.from_tensor/save/encode and
    Pipeline on the embedded tiny bundle (the examples run them end to end: suite 'examples')."""

    def setUp(self):
        self.ctx = nextgpt.Context(device="cpu")
        self.cat = os.path.join(SRC, "data", "tiny", "cat.jpg")

    def tearDown(self):
        self.ctx.close()

    def test_stage_handles(self):
        M = nextgpt.Modality
        enc = nextgpt.Encoder(self.ctx, os.path.join(TINY, "imagebind"), modalities="image")
        emb = enc.encode_image(self.cat).numpy()
        self.assertEqual(emb.shape, (1, enc.embed_dim))
        self.assertAlmostEqual(float(np.linalg.norm(emb)), 1.0, places=5)
        with nextgpt.Image(self.cat) as cat:  # the decoded pixels as a numpy array: the same embedding
            np.testing.assert_array_equal(enc.encode_image(cat.pixels()).numpy(), emb)
        with self.assertRaises(nextgpt.Error):  # the audio branch was not loaded
            enc.encode_audio(nextgpt.Audio.from_pcm([0.0] * 16000, 1, 16000))
        with self.assertRaises(nextgpt.Error) as e:
            nextgpt.Encoder(self.ctx, os.path.join(TINY, "nope"))
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_NOT_FOUND)

        pj = nextgpt.Projector(self.ctx, os.path.join(TINY, "projectors"), input=True, outputs=[M.IMAGE])
        self.assertTrue(pj.has_input and pj.has_output(M.IMAGE) and not pj.has_output(M.AUDIO))
        soft = pj.input(emb)
        self.assertEqual(soft.shape, (1, pj.llm_hidden_size))

        bb = nextgpt.Backbone(self.ctx, os.path.join(TINY, "llm"))
        s = bb.session(n_ctx=256)
        turn = s.turn("draw it", media=[(M.IMAGE, soft)], require=[M.IMAGE], max_new_tokens=4)
        self.assertGreater(s.n_past, 0)
        g = [g for g in turn.groups if g.modality == M.IMAGE][0]
        self.assertEqual(g.hidden.shape, (pj.num_input_tokens(M.IMAGE), bb.n_embd))
        self.assertEqual(g.input_embs.shape, g.hidden.shape)
        with self.assertRaises(ValueError):  # a soft token of the wrong width
            s.turn("x", media=[(M.IMAGE, np.zeros((1, 3), np.float32))])
        cond = pj.output(M.IMAGE, g.hidden, g.input_embs)
        self.assertEqual(cond.shape[:2], (1, pj.num_output_tokens(M.IMAGE)))
        with self.assertRaises(nextgpt.Error):  # not loaded
            pj.output(M.AUDIO, g.hidden, g.input_embs)

        dec = nextgpt.Decoder(self.ctx, os.path.join(TINY, "decoders", "image"))
        steps = []
        px = dec.generate(cond, steps=2, on_step=lambda i, n: steps.append((i, n)))
        self.assertTrue(steps and steps[-1][0] == steps[-1][1] >= 2)  # PNDM may add a warm-up step
        self.assertEqual(px.shape, (1, 64, 64, 3))
        with self.assertRaises(nextgpt.Error):  # cancelled by the callback
            dec.generate(cond, steps=2, on_step=lambda i, n: False)
        previews = []
        dec.generate(cond, steps=2, on_preview=lambda i, n, lat, rgb: previews.append((i, lat.shape, rgb.shape)))
        self.assertTrue(previews and previews[0] == (1, (1, 4, 8, 8), (1, 8, 8, 3)), previews)
        with self.assertRaises(nextgpt.Error) as e:  # cancelled by the preview
            dec.generate(cond, steps=2, on_preview=lambda i, n, lat, rgb: False)
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_CANCELLED)
        img = nextgpt.Image.from_tensor(px)
        self.assertEqual((img.width, img.height), (64, 64))
        self.assertEqual(img.encode()[:4], b"\x89PNG")
        # Stable Diffusion's safety checker (our golden model's) on that image, F32 and U8
        sd = nextgpt.Decoder(self.ctx, os.path.join(SRC, "tests", "golden", "models", "sd-b-safety"),
                             flags=nextgpt.capi.NGPT_DECODER_FLAG_SAFETY_CHECKER)
        flags, special, concept = sd.safety_check(px)
        self.assertEqual((len(flags), special.shape, concept.shape), (1, (1, 3), (1, 17)))
        self.assertEqual(flags[0], bool((concept.numpy() > 0).any()))
        u8 = np.rint(px.numpy() * np.float32(255)).astype(np.uint8)
        self.assertEqual(sd.safety_check(u8)[0], flags)
        with self.assertRaises(nextgpt.Error) as e:  # no checker loaded
            dec.safety_check(px)
        self.assertEqual(e.exception.status, nextgpt.capi.NGPT_ERR_UNSUPPORTED)
        cond48 = np.random.default_rng(3).standard_normal((2, 77, 48)).astype(np.float32)
        images, nsfw = sd.generate(cond48, steps=1, guidance_scale=1.0, width=32, height=32, return_nsfw=True)
        self.assertEqual((images.shape, len(nsfw)), ((2, 32, 32, 3), 2))
        arr = images.numpy()
        for i, f in enumerate(nsfw):  # a flagged image comes back black
            self.assertTrue(not arr[i].any() if f else arr[i].any())
        plain = nextgpt.Decoder(self.ctx, os.path.join(SRC, "tests", "golden", "models", "sd-b-safety"))
        unfiltered = plain.generate(cond48, steps=1, guidance_scale=1.0, width=32, height=32).numpy()
        self.assertEqual(nsfw, sd.safety_check(unfiltered)[0])
        with self.assertRaises(nextgpt.Error):
            img.save(os.path.join(TINY, "no-such-dir", "x.png"))
        self.ctx.close()  # sessions before their backbone, every handle before the context
        self.assertTrue(s.closed and bb.closed and enc.closed and dec.closed)

    @unittest.skipIf(PILImage is None, "Pillow (python3-pil) is not installed")
    def test_pil_images(self):
        with PILImage.open(self.cat) as pil, nextgpt.Image(self.cat) as ours:
            self.assertEqual(pil.size, (ours.width, ours.height))
            with nextgpt.Image.from_pil(pil) as im:  # our JPEG decoder gives Pillow's pixels
                self.assertTrue((im.pixels() == np.asarray(pil.convert("RGB"))).all())
            self.assertEqual(ours.to_pil().tobytes(), ours.pixels().tobytes())
            enc = nextgpt.Encoder(self.ctx, os.path.join(TINY, "imagebind"), modalities="image")
            self.assertTrue((enc.encode_image(pil).numpy() == enc.encode_image(self.cat).numpy()).all())
        # modes other than RGB go through convert("RGB"), as ImageBind's loader does
        rng = np.random.default_rng(9)
        base = PILImage.fromarray(rng.integers(0, 256, (13, 17, 3), dtype=np.uint8))
        for mode in ("L", "LA", "RGBA", "P", "CMYK", "I", "F", "1"):
            pil = base.convert(mode)
            with nextgpt.Image.from_pil(pil) as im:
                self.assertTrue((im.pixels() == np.asarray(pil.convert("RGB"))).all(), mode)
        with self.assertRaises(TypeError):
            nextgpt.Image.from_pil(np.zeros((2, 2, 3), np.uint8))

    def test_handle_safety(self):
        """What safe Python must not be able to break: the free order inside a reference cycle,
        close() during a call, copies of handles, unchecked buffers and integers, byte order,
        embedded NULs; and what must survive: a callback's exception, an Error's pickle."""
        import copy
        import pickle
        M = nextgpt.Modality
        lib = nextgpt.lib
        order = []
        real = {n: getattr(lib, n) for n in ("ngpt_context_free", "ngpt_encoder_free")}
        for n, f in real.items():
            setattr(lib, n, lambda p, n=n, f=f: (order.append(n), f(p)))
        try:  # a cycle: the collector finalizes in any order; the context must still go last
            ctx = nextgpt.Context(device="cpu")
            cyc = [ctx, nextgpt.Encoder(ctx, os.path.join(TINY, "imagebind"), modalities="image")]
            cyc.append(cyc)
            del ctx, cyc
            gc.collect()
        finally:
            for n, f in real.items():
                setattr(lib, n, f)
        self.assertEqual(order, ["ngpt_encoder_free", "ngpt_context_free"])

        enc = nextgpt.Encoder(self.ctx, os.path.join(TINY, "imagebind"), modalities=M.IMAGE)
        self.assertTrue(enc.modalities & nextgpt.capi.NGPT_ENCODER_IMAGE)
        self.assertFalse(enc.modalities & nextgpt.capi.NGPT_ENCODER_AUDIO)
        with self.assertRaises(ValueError):
            nextgpt.Encoder(self.ctx, os.path.join(TINY, "imagebind"), modalities=M.TEXT)
        dec = nextgpt.Decoder(self.ctx, os.path.join(TINY, "decoders", "image"))
        cond = np.random.default_rng(5).standard_normal((1, 77, dec.text_hidden_size)).astype(np.float32)
        with self.assertRaises(RuntimeError):  # closing the decoder inside its own call
            dec.generate(cond, steps=1, on_step=lambda i, n: dec.close())
        with self.assertRaises(RuntimeError):  # or its context
            dec.generate(cond, steps=1, on_step=lambda i, n: self.ctx.close())
        self.assertFalse(dec.closed or self.ctx.closed)
        with self.assertRaises(KeyError):  # a callback's exception comes out of the call
            dec.generate(cond, steps=1, on_step=lambda i, n: {}["boom"])
        self.assertEqual(dec.generate(cond, steps=1, width=16, height=16).shape, (1, 16, 16, 3))

        img = nextgpt.Image(self.cat)
        for op in (copy.copy, copy.deepcopy, pickle.dumps):
            with self.assertRaises(TypeError):
                op(img)
        with self.assertRaises(ValueError):  # would read 300 MB past a 3-byte buffer
            nextgpt.Image.from_rgb8(b"\0" * 3, width=10000, height=10000)
        with self.assertRaises(ValueError):
            nextgpt.Image.from_rgb8(b"\0" * 60, width=10, height=2, stride=100)
        self.assertEqual(nextgpt.Image.from_rgb8(b"\1" * 33, width=3, height=2, stride=18).width, 3)
        with self.assertRaises(TypeError):  # float pixels: from_tensor, not a silent cast to 0
            nextgpt.Image.from_rgb8(np.full((2, 2, 3), 0.5, np.float32))
        px = np.random.default_rng(1).random((4, 5, 3)).astype(np.float32)
        self.assertTrue(np.array_equal(nextgpt.Image.from_tensor(px.astype(">f4")).pixels(),
                                       nextgpt.Image.from_tensor(px).pixels()))
        with self.assertRaises(ValueError):
            nextgpt.Image(self.cat + "\0junk")
        with self.assertRaises(ValueError):
            nextgpt.Context(device="gpu")
        with self.assertRaises(ValueError):
            img.encode("webp")
        with self.assertRaises(ValueError):  # 5 samples are not frames of 2 channels
            nextgpt.Audio.from_pcm([0.0] * 5, 2, 16000)

        try:
            nextgpt.Image(os.path.join(TINY, "missing.jpg"))
        except nextgpt.Error as e:
            err = e
        back = pickle.loads(pickle.dumps(err))
        self.assertEqual((back.status, back.message, back.function, str(back)),
                         (err.status, err.message, err.function, str(err)))
        self.assertEqual(copy.copy(err).status, err.status)
        # the exported names call themselves nextgpt.X, wherever they are written
        self.assertEqual(repr(nextgpt.Error), "<class 'nextgpt.Error'>")
        self.assertIn("nextgpt.Error:", "".join(__import__("traceback").format_exception_only(type(err), err)))
        for name in nextgpt.__all__:
            obj = getattr(nextgpt, name)
            if isinstance(obj, type) or callable(obj):
                self.assertEqual(obj.__module__, "nextgpt", name)
                self.assertIs(pickle.loads(pickle.dumps(obj)), obj)

        bb = nextgpt.Backbone(self.ctx, os.path.join(TINY, "llm"))
        tok = nextgpt.Tokenizer(os.path.join(TINY, "llm"))
        with self.assertRaises(ValueError):
            tok.decode([2**32 + 5])
        with self.assertRaises(ValueError):
            tok.piece_to_id("a\0b")
        s = bb.session(n_ctx=128)
        with self.assertRaises(ZeroDivisionError):  # raised in on_text: out of the turn
            s.turn("hello", max_new_tokens=3, on_text=lambda t: 1 / 0)
        with self.assertRaises(RuntimeError):  # the backbone while its session is in a turn
            s.turn("hello", max_new_tokens=3, on_text=lambda t: bb.close())
        p = nextgpt.Pipeline(self.ctx, TINY)
        with self.assertRaises(OSError):
            p.turn("hi", max_new_tokens=2, on_token=lambda t: open(os.path.join(TINY, "no", "such")))

    def test_without_numpy(self):
        """The chat-to-projector flow with numpy absent (numpy_absent: each nextgpt module's _np =
        None): soft rows as array('f'), a turn's groups as array('f') into the output projector;
        the same numbers as with numpy. A closed Tensor says so, and Tensors refuse copies."""
        import copy
        M = nextgpt.Modality
        enc = nextgpt.Encoder(self.ctx, os.path.join(TINY, "imagebind"), modalities="image")
        pj = nextgpt.Projector(self.ctx, os.path.join(TINY, "projectors"), input=True, outputs=[M.IMAGE])
        bb = nextgpt.Backbone(self.ctx, os.path.join(TINY, "llm"))
        soft = pj.input(enc.encode_image(self.cat))
        runs = []
        for numpy_on in (True, False):
            with numpy_absent(not numpy_on):
                rows = soft if numpy_on else array.array("f", soft.tobytes())
                s = bb.session(n_ctx=256)
                turn = s.turn("draw it", media=[(M.IMAGE, rows)], require=[M.IMAGE], max_new_tokens=3, seed=1)
                g = [g for g in turn.groups if g.modality == M.IMAGE][0]
                self.assertIsInstance(g.hidden, np.ndarray if numpy_on else array.array)
                runs.append((turn.text, pj.output(M.IMAGE, g.hidden, g.input_embs).tobytes()))
                s.close()
        self.assertEqual(runs[0], runs[1])
        # the low-level calls too: embedding rows as array('f'), hidden rows back as array('f')
        gens = []
        for numpy_on in (True, False):
            with numpy_absent(not numpy_on):
                rows = bb.embed_tokens([1, 7, 9])
                s = bb.session(n_ctx=32)
                s.eval(embeds=rows.numpy() if numpy_on else array.array("f", rows.tobytes()))
                g = s.generate_greedy(3, hidden=True)
                self.assertIsInstance(g.hidden, np.ndarray if numpy_on else array.array)
                gens.append((g.ids, np.asarray(g.hidden, np.float32).ravel().tolist(), s.logits().tolist()))
                s.close()
        self.assertEqual(gens[0], gens[1])
        t = pj.input(enc.encode_image(self.cat))
        with self.assertRaises(TypeError):
            copy.copy(t)
        t.close()
        self.assertTrue(t.closed)
        for op in (t.numpy, t.tolist, t.tobytes, lambda: len(t)):
            with self.assertRaises(ValueError):
                op()

    def test_pipeline(self):
        M = nextgpt.Modality
        p = nextgpt.Pipeline(self.ctx, TINY)
        self.assertTrue(p.is_test_model)
        pieces, events = [], []
        r = p.turn("draw it", media=[(M.IMAGE, self.cat)], force=[M.IMAGE], steps=2, max_new_tokens=6,
                   on_token=pieces.append, on_event=lambda *ev: events.append(ev[0]))
        self.assertEqual("".join(pieces), r.text)
        self.assertIn(nextgpt.PipelineEventKind.DENOISE, events)
        out = [o for o in r.outputs if o.modality == M.IMAGE][0]
        self.assertTrue(out.ok)
        self.assertEqual((out.format, out.data[:4]), ("png", b"\x89PNG"))
        with out.image() as im:
            self.assertEqual((im.width, im.height), (64, 64))
        self.assertEqual((r.history_media, r.history_error), (1, None))  # the image re-entered the history
        self.assertGreater(r.stage_ms[nextgpt.PipelineStage.DECODE], 0)
        if PILImage is not None:  # a PIL image in, alone or with its modality: the same answer as the file
            p.reset()
            with PILImage.open(self.cat) as pil:
                for media in ([pil], [(M.IMAGE, pil)]):
                    p.reset()
                    r3 = p.turn("draw it", media=media, force=[M.IMAGE], steps=2, max_new_tokens=6)
                    self.assertEqual((r3.text, r3.outputs[0].data), (r.text, out.data))
            self.assertEqual(out.image().to_pil().size, (64, 64))
        with nextgpt.Image(self.cat) as im:  # numpy RGB8 pixels, alone or with their modality: the same
            px = im.pixels()
        for media in ([px], [(M.IMAGE, px)]):
            p.reset()
            r4 = p.turn("draw it", media=media, force=[M.IMAGE], steps=2, max_new_tokens=6)
            self.assertEqual((r4.text, r4.outputs[0].data), (r.text, out.data))
        p.reset()
        with self.assertRaises(TypeError):  # float pixels: from_rgb8 names Image.from_tensor
            p.turn("x", media=[px.astype(np.float32)], max_new_tokens=1)
        p.reset()
        with open(self.cat, "rb") as f:
            r2 = p.turn("again", media=[nextgpt.Image.from_bytes(f.read())], steps=1, max_new_tokens=2,
                        on_token=lambda t: False)  # cancelled at the first token
        self.assertTrue(r2.cancelled)
        p.reset()
        with self.assertRaises(nextgpt.Error) as e:
            p.turn("x", media=[(M.IMAGE, os.path.join(TINY, "no-such-cat.jpg"))])
        self.assertIn("no-such-cat.jpg", e.exception.message)
        with self.assertRaises(nextgpt.Error):
            nextgpt.Pipeline(self.ctx, os.path.join(TINY, "nope"))

    def test_pipeline_stages_lent(self):
        """The pipeline's stages and session, lent: usable as the stage handles are, the same object
        while referenced, never freed by Python, closed with the pipeline (which they keep alive);
        a decoder is None until loaded and closed by release_decoder; a stage cannot be used during
        a turn. stage_memory: the most memory each stage held, within the estimate."""
        M, S, lib = nextgpt.Modality, nextgpt.PipelineStage, nextgpt.lib
        p = nextgpt.Pipeline(self.ctx, TINY)
        bb, enc, pj, s = p.backbone, p.encoder, p.projector, p.session
        self.assertIs(p.backbone, bb)
        self.assertEqual((s.n_past, s.logits()), (0, None))
        self.assertIsNone(p.decoder(M.IMAGE))  # loaded on first use
        self.assertTrue(os.path.isabs(p.decoder_path(M.IMAGE)))
        self.assertTrue(os.path.samefile(p.decoder_path(M.IMAGE), os.path.join(TINY, "decoders", "image")))
        self.assertIsNone(p.decoder_path(M.TEXT))
        seen = []  # getters may be called from a turn's callback
        r = p.turn("draw it", media=[(M.IMAGE, self.cat)], force=[M.IMAGE], steps=1, max_new_tokens=4,
                   on_token=lambda t: seen.append((p.is_test_model, s.n_past, bb.n_embd)))
        self.assertTrue(r.outputs[0].ok)
        self.assertTrue(seen and all(v[0] and v[1] > 0 and v[2] == bb.n_embd for v in seen), seen)
        # stage memory: host bytes on the CPU, no device bytes; at most the estimate (its documented bound)
        est = nextgpt.estimate_memory(TINY)
        self.assertEqual(set(r.stage_memory), set(S) - {S.COUNT})
        for st, (host, device) in r.stage_memory.items():
            self.assertEqual(device, 0, st)
            self.assertLessEqual(host, est.stages[st], st)
        self.assertGreater(r.stage_memory[S.LLM][0], 0)
        self.assertGreater(r.stage_memory[S.DECODE][0], 0)
        self.assertGreater(s.n_past, 0)
        hid = s.hidden()
        self.assertEqual(hid.shape[1:], (bb.n_embd,))
        self.assertEqual(s.logits().shape, (hid.shape[0], bb.n_vocab))
        # the stages are the ones loaded from the bundle's parts
        with nextgpt.Backbone(self.ctx, os.path.join(TINY, "llm")) as own:
            self.assertEqual((bb.n_vocab, bb.n_embd, bb.n_layer), (own.n_vocab, own.n_embd, own.n_layer))
        with nextgpt.Tokenizer(os.path.join(TINY, "llm")) as own:
            self.assertEqual(bb.tokenizer.encode("draw [IMG0]"), own.encode("draw [IMG0]"))
        own_enc = nextgpt.Encoder(self.ctx, os.path.join(TINY, "imagebind"))
        np.testing.assert_array_equal(enc.encode_image(self.cat).numpy(), own_enc.encode_image(self.cat).numpy())
        self.assertEqual((pj.llm_hidden_size, pj.has_input, pj.d_model(M.IMAGE)), (bb.n_embd, True, 32))
        dec = p.decoder(M.IMAGE)
        self.assertIs(p.decoder(M.IMAGE), dec)
        self.assertEqual(dec.kind, nextgpt.DecoderKind.IMAGE)
        cond = np.zeros((1, 77, dec.text_hidden_size), np.float32)
        self.assertEqual(dec.generate(cond, steps=1, width=16, height=16).shape, (1, 16, 16, 3))
        # a stage is the pipeline's: not usable while a turn runs (nor a turn while a stage's call runs)
        with self.assertRaises(RuntimeError):
            p.turn("x", max_new_tokens=2, on_token=lambda t: enc.encode_image(self.cat))
        with self.assertRaises(RuntimeError):
            dec.generate(cond, steps=1, width=16, height=16, on_step=lambda i, n: p.reset())
        # release_decoder closes the lent decoder; the next use loads another
        p.release_decoder(M.IMAGE)
        self.assertTrue(dec.closed)
        self.assertIsNone(p.decoder(M.IMAGE))
        # a session of our own on the lent backbone
        mine = bb.session(n_ctx=32)
        mine.eval([1, 5, 9])
        self.assertEqual(mine.generate_greedy(2).ids, own_greedy(self.ctx, [1, 5, 9], 2))
        freed = []
        names = ("ngpt_backbone_free", "ngpt_encoder_free", "ngpt_projector_free", "ngpt_decoder_free",
                 "ngpt_backbone_session_free", "ngpt_tokenizer_free", "ngpt_pipeline_free")
        real = {n: getattr(lib, n) for n in names}
        for n, f in real.items():
            setattr(lib, n, lambda q, n=n, f=f: (freed.append(n), f(q)))
        try:
            tok = bb.tokenizer
            owner = weakref.ref(p)
            p = None
            gc.collect()
            self.assertIsNotNone(owner())  # its lent stages keep it alive
            self.assertEqual(freed, [])
            owner().close()
        finally:
            for n, f in real.items():
                setattr(lib, n, f)
        # our session first, then the pipeline, which frees its stages: nothing twice
        self.assertEqual(freed, ["ngpt_backbone_session_free", "ngpt_pipeline_free"])
        self.assertTrue(all(h.closed for h in (bb, enc, pj, s, tok, mine)))
        with self.assertRaises(ValueError):
            bb.n_embd
        # the collector: a lent stage alone keeps its pipeline; dropping it frees the pipeline
        freed.clear()
        setattr(lib, "ngpt_pipeline_free", lambda q, f=real["ngpt_pipeline_free"]: (freed.append(1), f(q)))
        try:
            e2 = nextgpt.Pipeline(self.ctx, TINY).encoder
            gc.collect()
            self.assertEqual((e2.embed_dim, freed), (own_enc.embed_dim, []))
            del e2
            gc.collect()
            self.assertEqual(freed, [1])
        finally:
            setattr(lib, "ngpt_pipeline_free", real["ngpt_pipeline_free"])

    def test_lent_edges(self):
        """From a review: a modality number past 32 bits is refused, not wrapped onto another (it
        aliased the image decoder, which release_decoder then freed under the alias); media given
        as a generator or a long list stay open for the whole turn; a lent session outlives the
        lent backbone's Python object; misaligned and read-only arrays are copied, not used."""
        M = nextgpt.Modality
        p = nextgpt.Pipeline(self.ctx, TINY, preload=[M.IMAGE])
        for call in (lambda: p.decoder(2**32 + 1), lambda: p.release_decoder(2**32 + 1),
                     lambda: p.decoder_path(2**32 + 1), lambda: p.projector.d_model(2**32 + 1),
                     lambda: nextgpt.video_codec(2**32)):
            with self.assertRaises(ValueError):
                call()
        self.assertIsNotNone(p.decoder(M.IMAGE))
        imgs = [nextgpt.Image.from_rgb8(np.full((32, 32, 3), v, np.uint8)) for v in (10, 200)]

        def close_second(kind, *_):
            if kind == nextgpt.PipelineEventKind.ENCODE:
                with self.assertRaises(RuntimeError):  # in use by the turn
                    imgs[1].close()
            return True
        r = p.turn("look", media=(x for x in imgs), max_new_tokens=2, on_event=close_second)
        self.assertFalse(imgs[1].closed)
        self.assertIsInstance(r.text, str)
        p.reset()
        # a list longer than 256 (soft rows: cheap) is scanned whole too
        bb = p.backbone
        rows = [nextgpt.Tensor.from_buffer(np.zeros(bb.n_embd, np.float32), nextgpt.Dtype.F32, (1, bb.n_embd))
                for _ in range(2)]
        mine = bb.session(n_ctx=1024)

        tried = []

        def close_last(_text):
            with self.assertRaises(RuntimeError):
                rows[1].close()
            tried.append(1)
            return False
        mine.turn("x", media=[(M.IMAGE, rows[0])] * 256 + [(M.AUDIO, rows[1])], max_new_tokens=4, temperature=0,
                  on_text=close_last)
        self.assertEqual((tried, rows[1].closed), ([1], False))
        mine.close()
        s = p.session
        p.backbone.close()  # forgets the lent backbone's object; the session keeps its widths
        p.turn("hi", max_new_tokens=1)
        self.assertEqual(s.logits().shape[1], p.backbone.n_vocab)
        # a float32 array at an odd address, and a read-only one stepped "in place": copies
        raw = np.zeros(4 * 3 * 2 * 8 * 8 + 1, np.uint8)
        odd = np.frombuffer(raw.data, np.float32, 3 * 2 * 8 * 8, 1)
        self.assertFalse(odd.flags.aligned)
        self.assertEqual(nextgpt.video_postprocess(odd.reshape(1, 3, 2, 8, 8)).numpy().shape, (2, 8, 8, 3))
        sched = nextgpt.Scheduler(os.path.join(GOLDEN, "models", "sd-a", "scheduler", "scheduler_config.json"))
        sched.set_timesteps(2)
        frozen = np.frombuffer(np.ones(16, np.float32).tobytes(), np.float32)
        self.assertFalse(frozen.flags.writeable)
        out = sched.step(np.zeros(16, np.float32), sched.timesteps[0], frozen)
        self.assertTrue((frozen == 1).all())  # the bytes object under it is immutable: untouched
        self.assertEqual(len(out), 16)
        p.close()

    def test_session_add_assistant_media_and_timings(self):
        """A turn's timings; add_assistant_media re-writes the answer with media first, as the
        official history holds it: each medium is <Img> soft </Img> (3 positions), the answer's
        signal tokens leave the cache; only once, right after a turn."""
        M, C = nextgpt.Modality, nextgpt.capi
        bb = nextgpt.Backbone(self.ctx, os.path.join(TINY, "llm"))
        s = bb.session(n_ctx=256)
        soft = np.random.default_rng(6).standard_normal((1, bb.n_embd)).astype(np.float32)
        with self.assertRaises(nextgpt.Error) as e:  # no turn yet
            s.add_assistant_media([(M.IMAGE, soft)])
        self.assertEqual(e.exception.status, C.NGPT_ERR_INVALID_ARGUMENT)
        self.assertIn("right after", e.exception.message)
        ends = []
        for n_media in (1, 2):
            s.reset()
            r = s.turn("draw it", require=[M.IMAGE], max_new_tokens=3, seed=4)
            prompt_ms, generate_ms = r.timings
            self.assertTrue(prompt_ms >= 0 and generate_ms >= 0 and prompt_ms + generate_ms > 0, r.timings)
            self.assertEqual(len(r.groups), 1)
            before = s.hidden().numpy()
            s.add_assistant_media([(M.IMAGE, soft)] * n_media)
            ends.append(s.n_past)
            self.assertFalse(np.array_equal(s.hidden().numpy(), before))  # the re-written answer's last position
            with self.assertRaises(nextgpt.Error) as e:  # once per answer
                s.add_assistant_media([(M.IMAGE, soft)])
            self.assertIn("once per answer", e.exception.message)
        self.assertEqual(ends[1] - ends[0], 3)  # the same answer, one more <Img> soft </Img>
        r2 = s.turn("and again", max_new_tokens=2)  # the conversation goes on from the re-written answer
        self.assertGreaterEqual(s.n_past, ends[1] + r2.n_prompt)
        s.reset()
        s.turn("draw it", require=[M.IMAGE], max_new_tokens=3, seed=4)
        with self.assertRaises(ValueError):  # a row of the wrong width
            s.add_assistant_media([(M.IMAGE, soft[:, :5])])
        with self.assertRaises(nextgpt.Error) as e:
            s.add_assistant_media([])
        self.assertEqual(e.exception.status, C.NGPT_ERR_INVALID_ARGUMENT)
        self.assertIn("n_media is 0", e.exception.message)

    def test_cuda_graph_flags(self):
        """The stages' CUDA graph flags are accepted on the CPU and change nothing there."""
        M, C = nextgpt.Modality, nextgpt.capi
        outs = []
        for flags in (0, C.NGPT_PIPELINE_CUDA_GRAPHS):
            p = nextgpt.Pipeline(self.ctx, TINY, flags=flags)
            r = p.turn("draw it", media=[(M.IMAGE, self.cat)], force=[M.IMAGE], steps=2, max_new_tokens=6)
            outs.append((r.text, [o.data for o in r.outputs]))
            p.close()
        self.assertEqual(outs[0], outs[1])
        # channels last: the same text; the image within rounding (8-bit pixels: at most 1 apart)
        p = nextgpt.Pipeline(self.ctx, TINY, flags=C.NGPT_PIPELINE_CHANNELS_LAST)
        r = p.turn("draw it", media=[(M.IMAGE, self.cat)], force=[M.IMAGE], steps=2, max_new_tokens=6)
        self.assertEqual(r.text, outs[0][0])
        self.assertEqual(len(r.outputs), len(outs[0][1]))
        p.close()
        with self.assertRaises(nextgpt.Error) as e:
            nextgpt.Pipeline(self.ctx, TINY, flags=0x80)
        self.assertEqual(e.exception.status, C.NGPT_ERR_INVALID_ARGUMENT)
        bb = nextgpt.Backbone(self.ctx, os.path.join(TINY, "llm"), flags=C.NGPT_BACKBONE_FLAG_CUDA_GRAPH)
        self.assertGreater(bb.n_vocab, 0)
        bb.close()
        enc = nextgpt.Encoder(self.ctx, os.path.join(TINY, "imagebind"), modalities="image",
                              flags=C.NGPT_ENCODER_FLAG_CUDA_GRAPH)
        self.assertEqual(enc.encode_image(self.cat).numpy().shape, (1, enc.embed_dim))
        enc.close()

    def test_estimate_memory(self):
        M, P = nextgpt.Modality, nextgpt.MemoryPart
        e = nextgpt.estimate_memory(TINY)
        self.assertEqual(len(e.parts), 6)  # the tiny bundle has every part
        bb = e.parts[P.BACKBONE]
        self.assertEqual(bb["kv_bytes"], 2 * 3 * 2048 * 128 * 4)  # F32 cache of the tiny LLaMA
        self.assertEqual(bb["mapped_bytes"], bb["weight_bytes"])   # CPU: views of the mmapped file
        self.assertEqual(e.peak, max(e.stages.values()))
        self.assertEqual(e.overhead, 0)
        g = nextgpt.estimate_memory(TINY, backend=nextgpt.Backend.CUDA, compute_dtype=nextgpt.Dtype.F16, n_ctx=512,
                                    outputs=[M.IMAGE, M.AUDIO], width=128, height=128)
        self.assertEqual(g.parts[P.BACKBONE]["kv_bytes"], 2 * 3 * 512 * 128 * 2)
        self.assertEqual(g.overhead, 1 << 30)
        self.assertEqual(g.peak, max(g.stages.values()) + g.overhead)
        with self.assertRaises(nextgpt.Error) as err:
            nextgpt.estimate_memory(TINY, compute_dtype=nextgpt.Dtype.F16)  # the CPU computes in F32
        self.assertEqual(err.exception.status, nextgpt.Status.ERR_UNSUPPORTED)
        with self.assertRaises(nextgpt.Error) as err:
            nextgpt.estimate_memory(os.path.join(TINY, "nope"))
        self.assertIn("bundle.json", err.exception.message)
        with self.assertRaises(nextgpt.Error) as err:  # the tiny image decoder has no safety checker
            nextgpt.estimate_memory(TINY, flags=nextgpt.capi.NGPT_PIPELINE_SAFETY_CHECKER)
        self.assertIn("safety_checker", err.exception.message)


if __name__ == "__main__":
    run = unittest.main(verbosity=2, exit=False)
    ok = run.result.wasSuccessful()
    if ok and len(sys.argv) == 1:  # the whole suite: every declared function was called
        never = sorted(set(nextgpt.capi.FUNCTIONS) - CALLED)
        if never:
            print("FAIL: %d public functions are never called by these tests: %s" % (len(never), ", ".join(never)))
            ok = False
        else:
            print("all %d public functions called" % len(nextgpt.capi.FUNCTIONS))
    sys.exit(0 if ok else 1)
