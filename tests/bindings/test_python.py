#!/usr/bin/python3
"""The Python package (bindings/python/nextgpt) against the built library and the golden cases.

Run by meson with Debian's /usr/bin/python3, PYTHONPATH=<build>/bindings/python and
NGPT_LIBRARY=<build>/lib/libnextgpt.so. Golden cases: ../shared/golden beside the source root
(NGPT_GOLDEN_DIR overrides). Exit 77 (SKIP) without numpy or without the golden folder.
"""
import array
import gc
import json
import os
import struct
import sys
import unittest

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

SRC = os.environ.get("NGPT_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
GOLDEN = os.environ.get("NGPT_GOLDEN_DIR", os.path.join(SRC, "..", "shared", "golden"))
if not os.path.isdir(GOLDEN):
    print("SKIP: the golden cases are not at %s (set NGPT_GOLDEN_DIR)" % GOLDEN)
    sys.exit(77)
TOK = os.path.join(GOLDEN, "models", "tok-a-nextgpt")
NP = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}


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
        """The chat-to-projector flow with numpy absent (the package's _np = None): soft rows as
        array('f'), a turn's groups as array('f') into the output projector; the same numbers as
        with numpy. A closed Tensor says so, and Tensors refuse copies."""
        import copy
        M = nextgpt.Modality
        enc = nextgpt.Encoder(self.ctx, os.path.join(TINY, "imagebind"), modalities="image")
        pj = nextgpt.Projector(self.ctx, os.path.join(TINY, "projectors"), input=True, outputs=[M.IMAGE])
        bb = nextgpt.Backbone(self.ctx, os.path.join(TINY, "llm"))
        soft = pj.input(enc.encode_image(self.cat))
        runs = []
        for numpy_on in (True, False):
            saved = nextgpt._np
            if not numpy_on:
                nextgpt._np = None
            try:
                rows = soft if numpy_on else array.array("f", soft.tobytes())
                s = bb.session(n_ctx=256)
                turn = s.turn("draw it", media=[(M.IMAGE, rows)], require=[M.IMAGE], max_new_tokens=3, seed=1)
                g = [g for g in turn.groups if g.modality == M.IMAGE][0]
                self.assertIsInstance(g.hidden, np.ndarray if numpy_on else array.array)
                runs.append((turn.text, pj.output(M.IMAGE, g.hidden, g.input_embs).tobytes()))
                s.close()
            finally:
                nextgpt._np = saved
        self.assertEqual(runs[0], runs[1])
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
