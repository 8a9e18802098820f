"""nextgpt.Pipeline: a whole NExT-GPT conversation in one handle, media in and media out, its
stages lent as the stage classes for inspection."""
import ctypes
import os

from ._convert import _cstr, _i32, _modality_bits, _params, _path, _str
from ._enums import Modality, PipelineEventKind, PipelineStage
from ._handle import _Handle
from ._library import _result_text, capi, lib
from .backbone import Backbone, Session
from .decoder import Decoder
from .encoder import Encoder
from .error import Error, _Raised, _call, _last_error
from .media import Audio, Image, _is_pil
from .projector import Projector
from .tensor import _np


def _is_pixels(x):
    """Whether x is a numpy array, taken as RGB8 pixels (Image.from_rgb8 says what it wants)."""
    return _np is not None and isinstance(x, _np.ndarray)


class PipelineOutput:
    """A media output of a pipeline turn: .modality, .status (0 = produced), .status_name,
    .data (the encoded bytes, or None), .format ("png", "wav", "mp4"), .message (why not), .nsfw
    (an image the safety checker blacked out: NGPT_PIPELINE_SAFETY_CHECKER)."""

    def __init__(self, modality, status, data, format, message, nsfw=False):
        self.modality, self.status, self.data, self.format, self.message = modality, status, data, format, message
        self.nsfw = nsfw
        self.status_name = lib.ngpt_status_string(status).decode()

    @property
    def ok(self):
        return self.status == capi.NGPT_OK

    def image(self):
        """An image output decoded: an Image (its to_pil() gives a PIL image)."""
        if not self.ok:
            raise Error(self.status, self.message, "PipelineOutput.image")
        if self.modality != capi.NGPT_MODALITY_IMAGE:
            raise ValueError("a %s output is not an image" % self.modality.name)
        return Image.from_bytes(self.data, "output." + self.format)

    def save(self, path):
        """Write the encoded bytes to path (Error when the output was not produced)."""
        if not self.ok:
            raise Error(self.status, self.message, "PipelineOutput.save")
        with open(path, "wb") as f:
            f.write(self.data)

    def __repr__(self):
        return "PipelineOutput(%s, %s, %s)" % (self.modality.name, self.status_name,
                                               "%d bytes" % len(self.data) if self.ok else self.message)


class PipelineResult:
    """A pipeline turn: .text, .outputs (PipelineOutput list), .cancelled, .stage_ms (dict of
    PipelineStage -> milliseconds), .stage_memory (dict of PipelineStage -> (host_bytes,
    device_bytes): the most tensor memory the context held during the stage), .history_media
    (outputs now in the conversation as media) and .history_error (None, or an Error saying what kept them out: the cached answer then
    stays as generated). A plain copy: nothing to close."""

    def __init__(self, ptr):
        n = ctypes.c_size_t(0)
        text = _result_text["ngpt_pipeline_result_text"](ptr, ctypes.byref(n))
        self.text = (ctypes.string_at(text, n.value) if n.value else b"").decode("utf-8", "replace")
        self.cancelled = bool(lib.ngpt_pipeline_result_cancelled(ptr))
        self.outputs = []
        for i in range(lib.ngpt_pipeline_result_n_outputs(ptr)):
            m = capi.ngpt_modality()
            data = ctypes.POINTER(ctypes.c_uint8)()
            size = ctypes.c_size_t(0)
            fmt = ctypes.c_char_p()
            st = lib.ngpt_pipeline_result_output(ptr, i, ctypes.byref(m), ctypes.byref(data), ctypes.byref(size),
                                                 ctypes.byref(fmt))
            self.outputs.append(PipelineOutput(
                Modality(m.value), st, ctypes.string_at(data, size.value) if st == capi.NGPT_OK else None,
                _str(fmt.value), _str(lib.ngpt_pipeline_result_output_message(ptr, i)),
                bool(lib.ngpt_pipeline_result_output_nsfw(ptr, i))))
        self.stage_ms = {PipelineStage(s): lib.ngpt_pipeline_result_stage_ms(ptr, s)
                         for s in range(capi.NGPT_PIPELINE_STAGE_COUNT)}
        self.stage_memory = {}
        for s in range(capi.NGPT_PIPELINE_STAGE_COUNT):
            host, device = ctypes.c_uint64(), ctypes.c_uint64()
            lib.ngpt_pipeline_result_stage_memory(ptr, s, ctypes.byref(host), ctypes.byref(device))
            self.stage_memory[PipelineStage(s)] = (host.value, device.value)
        n_hist = ctypes.c_int32(0)
        st = lib.ngpt_pipeline_result_history(ptr, ctypes.byref(n_hist))
        self.history_media = n_hist.value
        self.history_error = None if st == capi.NGPT_OK else Error(st, _last_error(), "ngpt_pipeline_result_history")


def _event_text(ev):
    """The event's text (not NUL-terminated: read exactly text_len bytes)."""
    off = capi.ngpt_pipeline_event.text.offset
    addr = ctypes.c_void_p.from_buffer(ev, off).value
    return ctypes.string_at(addr, ev.text_len).decode("utf-8", "replace") if addr else ""


class Pipeline(_Handle):
    """ngpt_pipeline: a whole NExT-GPT conversation from a bundle folder (bundle.json), every
    stage loaded once. preload: Modality values whose decoders load now (else on first use)."""
    _free = "ngpt_pipeline_free"
    _exclusive = True

    def __init__(self, ctx, bundle_dir, preload=None, n_ctx=0, flags=None, compute_dtype=None):
        """flags: NGPT_PIPELINE_* bits (capi: NGPT_PIPELINE_NO_MEDIA_HISTORY,
        NGPT_PIPELINE_CUDA_GRAPHS, NGPT_PIPELINE_CHANNELS_LAST, NGPT_PIPELINE_SAFETY_CHECKER); compute_dtype: Dtype.F32 (default),
        BF16 (CPU: every stage's CPU BF16), or F16 / BF16 on CUDA."""
        p = _params(capi.ngpt_pipeline_params, "ngpt_pipeline_params_default", n_ctx=n_ctx,
                    preload=_modality_bits(preload), flags=flags, compute_dtype=compute_dtype)
        out = ctypes.POINTER(capi.ngpt_pipeline)()
        _call("ngpt_pipeline_create", ctypes.byref(out), ctx._h(), _path(bundle_dir), ctypes.byref(p))
        self._adopt(out, ctx)

    @property
    def is_test_model(self):
        """True for a bundle with random weights (the tiny test model)."""
        return bool(lib.ngpt_pipeline_is_test_model(self._h()))

    def reset(self):
        """Forget the conversation."""
        _call("ngpt_pipeline_reset", self._h())

    def release_decoder(self, modality):
        """Free a loaded decoder (it reloads on its next use); a Decoder that decoder(modality)
        lent is closed first."""
        m = _i32(modality, "modality")  # ctypes would wrap a larger int onto another modality
        lent = self.__dict__.get("_lent_cache", {}).get(("decoder", m))
        if lent is not None:
            lent.close()  # RuntimeError while it is in a call
        _call("ngpt_pipeline_release_decoder", self._h(), m)

    # The stages, lent by the pipeline: never freed by Python, each keeps the pipeline alive and is
    # closed with it; their calls are pipeline calls too (not during a turn, nor from its callbacks).

    @property
    def backbone(self):
        """The language model (a lent Backbone)."""
        return self._lent("backbone", Backbone, lib.ngpt_pipeline_backbone(self._h()))

    @property
    def encoder(self):
        """ImageBind (a lent Encoder)."""
        return self._lent("encoder", Encoder, lib.ngpt_pipeline_encoder(self._h()))

    @property
    def projector(self):
        """The input and output projectors (a lent Projector)."""
        return self._lent("projector", Projector, lib.ngpt_pipeline_projector(self._h()))

    @property
    def session(self):
        """The conversation's backbone Session (lent), for inspection: n_past, and logits() /
        hidden() of the last evaluated position. Turns or evals on it desync the pipeline."""
        s = self._lent("session", Session, lib.ngpt_pipeline_session(self._h()))
        if s is not None and "_n_embd" not in s.__dict__:
            s._widths(lib.ngpt_pipeline_backbone(self._h()))
        return s

    def decoder(self, modality):
        """The decoder of modality (a lent Decoder), or None until it is loaded (by a turn that
        uses it, or preload); release_decoder closes it."""
        m = _i32(modality, "modality")
        return self._lent(("decoder", m), Decoder, lib.ngpt_pipeline_decoder(self._h(), m))

    def decoder_path(self, modality):
        """The absolute path of the bundle's decoder folder for modality, or None when it has none."""
        p = lib.ngpt_pipeline_decoder_path(self._h(), _i32(modality, "modality"))
        return None if p is None else os.fsdecode(p)

    def turn(self, text, media=(), force=None, steps=0, seed=0, max_new_tokens=None, temperature=None,
             top_p=None, guidance_scale=0.0, height=0, width=0, on_token=None, on_event=None):
        """One user turn. media: items that are an Image, a PIL image, a numpy uint8 [h, w, 3] array
        (RGB pixels), an Audio, or (Modality, source) with source a path, encoded bytes, Image, PIL
        image, numpy pixels or Audio. force: Modality values to answer with even
        when the model emits no signal tokens for them. on_token(str): the streamed answer;
        on_event(kind: PipelineEventKind, modality, step, total, text): every stage. Either
        returning False cancels (the result then says .cancelled). -> PipelineResult."""
        p = _params(capi.ngpt_pipeline_turn_params, "ngpt_pipeline_turn_params_default", force=_modality_bits(force),
                    steps=steps, seed=seed, max_new_tokens=max_new_tokens, temperature=temperature,
                    top_p=top_p, guidance_scale=guidance_scale, height=height, width=width)
        raised = _Raised()
        cb = None
        if on_token is not None or on_event is not None:
            def tramp(evp, _user):
                ev = evp.contents
                kind = PipelineEventKind(ev.kind)
                if on_event is not None and on_event(kind, Modality(ev.modality), ev.step, ev.total,
                                                     _event_text(ev)) is False:
                    return False
                if on_token is not None and kind == PipelineEventKind.TOKEN:
                    return on_token(_event_text(ev)) is not False
                return True
            cb = capi.ngpt_pipeline_event_fn(raised.guard(tramp))
            p.on_event = cb
        media = list(media)
        arr = (capi.ngpt_pipeline_media * max(len(media), 1))()
        keep = []
        for i, item in enumerate(media):
            if isinstance(item, Image) or _is_pil(item) or _is_pixels(item):
                item = (capi.NGPT_MODALITY_IMAGE, item)
            elif isinstance(item, Audio):
                item = (capi.NGPT_MODALITY_AUDIO, item)
            m, src = item
            arr[i].modality = _i32(m, "modality")
            if _is_pil(src) or _is_pixels(src):
                src = Image.from_pil(src) if _is_pil(src) else Image.from_rgb8(src)
                keep.append(src)  # freed by the collector once the turn has returned
            if isinstance(src, Image):
                arr[i].image = src._h()
            elif isinstance(src, Audio):
                arr[i].audio = src._h()
            elif isinstance(src, (bytes, bytearray, memoryview)):
                b = bytes(src)
                keep.append(b)
                arr[i].data = ctypes.cast(ctypes.c_char_p(b), ctypes.c_void_p)
                arr[i].size = len(b)
            else:
                b = _path(src)
                keep.append(b)
                arr[i].path = b
        out = ctypes.POINTER(capi.ngpt_pipeline_result)()
        return raised.result("ngpt_pipeline_turn", out, lib.ngpt_pipeline_result_free, PipelineResult, self._h(),
                             _cstr(text), arr if media else None, len(media), ctypes.byref(p))
