"""The language model (Backbone) and its conversations (Session), with the plain results that turns
and generations are copied into (so they need no close)."""
import array
import ctypes

from ._convert import _cstr, _i32, _modality_bits, _params, _path
from ._enums import Dtype, Modality, StopReason
from ._handle import _Handle
from ._library import _result_text, _text_fn, capi, lib
from .error import Error, _Raised, _call, _last_error
from .tensor import Tensor, _f32_copy, _flat_floats, _floats, _np
from .tokenizer import Tokenizer


class Backbone(_Handle):
    """ngpt_backbone: the LLaMA/Vicuna language model (+ the NExT-GPT delta), read-only once
    loaded; conversations live in Sessions (backbone.session())."""
    _free = "ngpt_backbone_free"

    def __init__(self, ctx, model_dir, delta_path=None, n_ctx=0, compute_dtype=None, flags=None):
        """compute_dtype: Dtype.F32 (default), BF16 (CPU: BF16 GEMM inputs), F16 / BF16 (CUDA).
        flags: NGPT_BACKBONE_FLAG_* bits (capi), e.g. capi.NGPT_BACKBONE_FLAG_CUDA_GRAPH."""
        p = _params(capi.ngpt_backbone_params, "ngpt_backbone_params_default", n_ctx=n_ctx,
                    compute_dtype=compute_dtype, flags=flags)
        keep = None
        if delta_path is not None:
            keep = _path(delta_path)
            p.delta_path = keep
        out = ctypes.POINTER(capi.ngpt_backbone)()
        _call("ngpt_backbone_create", ctypes.byref(out), ctx._h(), _path(model_dir), ctypes.byref(p))
        self._adopt(out, ctx)

    def session(self, n_ctx=0):
        """A new conversation (KV cache of n_ctx positions; 0 = the backbone's)."""
        return Session(self, n_ctx)

    @property
    def n_vocab(self):
        return lib.ngpt_backbone_n_vocab(self._h())

    @property
    def n_embd(self):
        return lib.ngpt_backbone_n_embd(self._h())

    @property
    def n_layer(self):
        return lib.ngpt_backbone_n_layer(self._h())

    @property
    def n_ctx(self):
        """The default (and largest) session context."""
        return lib.ngpt_backbone_n_ctx(self._h())

    @property
    def tokenizer(self):
        """The Tokenizer that goes with the weights, lent by the backbone (None when it has none):
        never freed by Python, it keeps the backbone alive and is closed with it."""
        return self._lent("tokenizer", Tokenizer, lib.ngpt_backbone_tokenizer(self._h()))

    def embed_tokens(self, ids):
        """The embedding rows of ids (ints in [0, n_vocab)): Tensor F32 [len(ids), n_embd], to build
        prompts of token rows and soft tokens (Session.eval's embeds)."""
        ids = [_i32(i) for i in ids]
        arr = (ctypes.c_int32 * max(len(ids), 1))(*ids)
        width = self.n_embd
        t = capi.ngpt_tensor()
        dims = (ctypes.c_int64 * 2)(len(ids), width)
        _call("ngpt_tensor_create", ctypes.byref(t), capi.NGPT_DTYPE_F32, 2, dims)
        out = Tensor(t)
        rows = ctypes.cast(t.data, ctypes.POINTER(ctypes.c_float)) if t.data else (ctypes.c_float * 1)()
        _call("ngpt_backbone_embed_tokens", rows, self._h(), arr, len(ids))
        return out


class TurnGroup:
    """A signal group of a turn: .modality, .hidden and .input_embs ([n_tokens, n_embd] float32
    numpy arrays, or array('f') without numpy), .required (forced, not started by the model)."""

    def __init__(self, modality, hidden, input_embs, required):
        self.modality, self.hidden, self.input_embs, self.required = modality, hidden, input_embs, required

    def __repr__(self):
        return "TurnGroup(%s, %d tokens)" % (self.modality.name, len(self.hidden))


class TurnResult:
    """A turn's answer: .text, .groups (TurnGroup list), .stop_reason (StopReason), .ids,
    .n_prompt, .timings ((prompt_ms, generate_ms): wall-clock milliseconds of the prompt's
    evaluation and of the generation). A plain copy: nothing to close."""

    def __init__(self, ptr, n_embd):
        n = ctypes.c_size_t(0)
        text = _result_text["ngpt_turn_result_text"](ptr, ctypes.byref(n))
        self.text = (ctypes.string_at(text, n.value) if n.value else b"").decode("utf-8", "replace")
        self.stop_reason = StopReason(lib.ngpt_turn_result_stop_reason(ptr))
        nid = ctypes.c_int32(0)
        ids = lib.ngpt_turn_result_ids(ptr, ctypes.byref(nid))
        self.ids = ids[:nid.value] if nid.value else []
        self.n_prompt = lib.ngpt_turn_result_n_prompt(ptr)
        prompt_ms, generate_ms = ctypes.c_double(), ctypes.c_double()
        lib.ngpt_turn_result_timings(ptr, ctypes.byref(prompt_ms), ctypes.byref(generate_ms))
        self.timings = (prompt_ms.value, generate_ms.value)
        self.groups = []
        for g in range(lib.ngpt_turn_result_n_groups(ptr)):
            m = capi.ngpt_modality()
            nt = ctypes.c_int32(0)
            hid, emb = ctypes.POINTER(ctypes.c_float)(), ctypes.POINTER(ctypes.c_float)()
            _call("ngpt_turn_result_group", ptr, g, ctypes.byref(m), ctypes.byref(nt), ctypes.byref(hid),
                  ctypes.byref(emb))
            rows = [_rows(p, nt.value, n_embd) for p in (hid, emb)]
            self.groups.append(TurnGroup(Modality(m.value), rows[0], rows[1],
                                         bool(lib.ngpt_turn_result_group_required(ptr, g))))


def _rows(p, n, width):
    """A copy of n x width floats at p: numpy [n, width], or array('f')."""
    data = ctypes.string_at(p, n * width * 4)
    if _np is None:
        return array.array("f", data)
    return _np.frombuffer(data, _np.float32).reshape(n, width).copy()


class Generation:
    """What Session.generate / generate_greedy produced: .ids (list of int: the tokens chosen, a
    stop id last when one ended it), .hidden (with hidden=True: the final-norm state of the
    position whose logits chose each id, [len(ids), n_embd] as numpy float32, or array('f')
    without numpy; else None), .error (None, or the Error that ended it early after some tokens:
    NGPT_ERR_CANCELLED when on_token returned False, NGPT_ERR_INVALID_ARGUMENT when the session's
    context filled up; the tokens so far are in the session), .cancelled. A plain copy."""

    def __init__(self, ids, hidden, error):
        self.ids, self.hidden, self.error = ids, hidden, error

    @property
    def cancelled(self):
        return self.error is not None and self.error.status == capi.NGPT_ERR_CANCELLED

    def __repr__(self):
        return "Generation(%d tokens%s)" % (len(self.ids), ", %s" % self.error.status_name if self.error else "")


def _soft_rows(rows, width, what):
    """F32 rows [n_rows, width] (numpy, an F32 Tensor, array('f'), floats, or rows of floats; a
    1-D one is one row) as (address, n_rows, keepalive). The C structs carry no width: a wrong
    one would be read past its end, so it is checked here."""
    keep = rows
    if isinstance(rows, Tensor):
        if rows.dtype != Dtype.F32:
            raise ValueError("%s must be F32, not %s" % (what, rows.dtype.name))
        shape, ptr = rows.shape, rows._open().data
    elif _np is not None and not isinstance(rows, array.array):
        a = _np.require(rows, _np.float32, "CA")
        keep = a
        shape, ptr = a.shape, a.ctypes.data
    else:  # array('f') (what TurnGroup holds without numpy), floats, or rows of floats
        p_rows, n, keep, _ = _floats(_flat_floats(rows))
        shape, ptr = ((n // width, width) if n and n % width == 0 else (n,)), ctypes.cast(p_rows, ctypes.c_void_p).value
    if len(shape) not in (1, 2) or shape[-1] != width or (len(shape) == 2 and shape[0] < 1):
        raise ValueError("%s must be [n_rows, %d], not %s" % (what, width, list(shape)))
    return ptr, (shape[0] if len(shape) == 2 else 1), keep


def _text_cb(fn, raised):
    """A ngpt_text_fn around fn(str) -> False to cancel (exceptions: see _Raised). The text is
    read as its length says, through a void pointer: the generated c_char_p would stop at a NUL
    (the byte token <0x00>)."""
    tramp = _text_fn(raised.guard(
        lambda p, n, _user: fn(ctypes.string_at(p, n).decode("utf-8", "replace") if n else "") is not False))
    return ctypes.cast(tramp, capi.ngpt_text_fn)  # the cast keeps tramp alive


class Session(_Handle):
    """ngpt_backbone_session: one conversation's KV cache on a Backbone."""
    _free = "ngpt_backbone_session_free"
    _exclusive = True

    def __init__(self, backbone, n_ctx=0):
        p = _params(capi.ngpt_backbone_session_params, "ngpt_backbone_session_params_default", n_ctx=n_ctx)
        out = ctypes.POINTER(capi.ngpt_backbone_session)()
        _call("ngpt_backbone_session_create", ctypes.byref(out), backbone._h(), ctypes.byref(p))
        self._adopt(out, backbone)  # keeps the backbone alive; it closes us first
        self._widths(backbone._h())

    def _widths(self, bb):
        """n_embd and n_vocab of the backbone (a C pointer), kept: a lent session outlives the
        Python object of a lent backbone."""
        self._n_embd = lib.ngpt_backbone_n_embd(bb)
        self._n_vocab = lib.ngpt_backbone_n_vocab(bb)

    @property
    def n_past(self):
        return lib.ngpt_backbone_session_n_past(self._h())

    @property
    def n_ctx(self):
        """Positions the cache can hold (the n_ctx it was made with; 0 there: the backbone's)."""
        return lib.ngpt_backbone_session_n_ctx(self._h())

    def reset(self):
        """Forget the conversation."""
        _call("ngpt_backbone_session_reset", self._h())

    def truncate(self, n_past):
        """Keep the first n_past positions (0 <= n_past <= self.n_past), e.g. to rewind a turn."""
        _call("ngpt_backbone_session_truncate", self._h(), _i32(n_past, "n_past"))

    def eval(self, ids=None, embeds=None, is_embed=None, output=None):
        """Append positions at n_past and run them: ids (token ids), embeds (rows [n, n_embd]: soft
        tokens, or Backbone.embed_tokens rows; numpy, Tensor or floats), or both with is_embed
        ([n] bools: row i of embeds where true, else ids[i]). output: OutputMode.LAST (default:
        logits() and hidden() of the last position), ALL (every position) or NONE (cache only).
        On an error n_past is unchanged."""
        n = None
        keep = []
        p_ids = p_emb = p_mask = None
        if ids is not None:
            ids = [_i32(i) for i in ids]
            n = len(ids)
            p_ids = (ctypes.c_int32 * max(n, 1))(*ids)
        if embeds is not None:
            ptr, n_rows, k = _soft_rows(embeds, self._n_embd, "embeds")
            keep.append(k)
            if n is not None and n_rows != n:
                raise ValueError("%d ids but %d embedding rows: both give every position" % (n, n_rows))
            n = n_rows
            p_emb = ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float))
        if n is None:
            raise ValueError("eval needs ids or embeds")
        if is_embed is not None:
            mask = [1 if v else 0 for v in is_embed]
            if len(mask) != n:
                raise ValueError("is_embed has %d entries for %d positions" % (len(mask), n))
            p_mask = (ctypes.c_uint8 * max(n, 1))(*mask)
        b = _params(capi.ngpt_backbone_batch, "ngpt_backbone_batch_default", output=output)
        b.n_tokens = _i32(n, "n_tokens")
        b.ids, b.embeds, b.is_embed = p_ids, p_emb, p_mask
        _call("ngpt_backbone_eval", self._h(), ctypes.byref(b))

    def logits(self):
        """The last eval's logits (a copy): Tensor F32 [n_rows, n_vocab] (1 row for OutputMode.LAST,
        n for ALL); None after OutputMode.NONE or before any eval."""
        n = ctypes.c_int32(0)
        p = lib.ngpt_backbone_get_logits(self._h(), ctypes.byref(n))
        return _f32_copy(p, (n.value, self._n_vocab)) if n.value else None

    def hidden(self):
        """The last eval's final-norm hidden states (a copy; what the output projectors read):
        Tensor F32 [n_rows, n_embd], or None as logits()."""
        n = ctypes.c_int32(0)
        p = lib.ngpt_backbone_get_hidden(self._h(), ctypes.byref(n))
        return _f32_copy(p, (n.value, self._n_embd)) if n.value else None

    def generate(self, max_new_tokens=None, stop_ids=(), temperature=None, top_k=None, top_p=None,
                 repetition_penalty=None, seed=None, on_token=None, hidden=False):
        """Generate from the last eval (which must have had outputs): temperature 0 (the default)
        is greedy, else sampled (top_k, top_p, repetition_penalty, seed as ngpt_generate_params).
        Each chosen token is fed back unless it is in stop_ids or the last allowed
        (max_new_tokens, default 16). on_token(id) -> False stops. hidden=True: also the hidden
        rows. -> Generation (its .error says why it ended early)."""
        return self._generate("ngpt_backbone_generate", max_new_tokens, stop_ids, on_token, hidden,
                              dict(temperature=temperature, top_k=top_k, top_p=top_p,
                                   repetition_penalty=repetition_penalty, seed=seed))

    def generate_greedy(self, max_new_tokens=None, stop_ids=(), on_token=None, hidden=False):
        """generate() with greedy decoding (argmax, first index on ties). -> Generation."""
        return self._generate("ngpt_backbone_generate_greedy", max_new_tokens, stop_ids, on_token, hidden, {})

    def _generate(self, fn, max_new_tokens, stop_ids, on_token, hidden, sampling):
        p = _params(capi.ngpt_generate_params, "ngpt_generate_params_default", max_new_tokens=max_new_tokens,
                    **sampling)
        stops = [_i32(i, "stop id") for i in stop_ids]
        arr = (ctypes.c_int32 * max(len(stops), 1))(*stops)
        if stops:
            p.stop_ids, p.n_stop_ids = arr, len(stops)
        raised = _Raised()
        cb = None
        if on_token is not None:
            cb = capi.ngpt_token_fn(raised.guard(lambda tok, _u: on_token(tok) is not False))
            p.on_token = cb
        cap = max(p.max_new_tokens, 1)
        width = self._n_embd
        ids = (ctypes.c_int32 * cap)()
        rows = (ctypes.c_float * (cap * width))() if hidden else None
        n = ctypes.c_int32(0)
        st = getattr(lib, fn)(ctypes.byref(n), self._h(), ctypes.byref(p), ids, rows)
        raised.check()  # a callback's exception, in place of the cancellation it caused
        err = None if st == capi.NGPT_OK else Error(st, _last_error(), fn)
        if err is not None and n.value == 0:
            raise err
        return Generation(list(ids[:n.value]), _rows(rows, n.value, width) if hidden else None, err)

    def add_assistant_media(self, media):
        """Right after a turn: re-write its cached answer as the official history holds it, media
        first ("### Assistant:" {<Img> soft </Img>} [BOS] answer-text), as NExT-GPT's demo does
        with the media it generated. media: (Modality, rows) pairs as turn()'s (the outputs
        re-encoded by ImageBind and the input projector), at least one."""
        arr, keep = self._media(media)
        _call("ngpt_backbone_add_assistant_media", self._h(), arr, len(keep))

    def _media(self, media):
        """An ngpt_turn_media array of (Modality, rows) pairs, and what keeps their rows alive
        (one entry per item)."""
        media = list(media)
        arr = (capi.ngpt_turn_media * max(len(media), 1))()
        keep = []
        width = self._n_embd
        for i, (m, rows) in enumerate(media):
            ptr, n_rows, k = _soft_rows(rows, width, "soft rows of %s" % Modality(int(m)).name)
            keep.append(k)
            arr[i].modality = _i32(m, "modality")
            arr[i].soft_rows = ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float))
            arr[i].n_rows = n_rows
        return arr, keep

    def turn(self, text, media=(), require=None, max_new_tokens=None, temperature=None, top_p=None,
             top_k=None, seed=None, on_text=None):
        """Answer one user turn with NExT-GPT's template. media: (Modality, rows) pairs, rows =
        projected soft tokens [n_rows, n_embd] (numpy or Tensor; several rows are summed).
        require: Modality values whose signal group is appended when the model does not start
        one. on_text(str) receives the streamed answer; returning False cancels. -> TurnResult."""
        p = _params(capi.ngpt_turn_params, "ngpt_turn_params_default", max_new_tokens=max_new_tokens,
                    temperature=temperature, top_p=top_p, top_k=top_k, seed=seed,
                    require_modalities=_modality_bits(require))
        raised = _Raised()
        cb = None
        if on_text is not None:
            cb = _text_cb(on_text, raised)
            p.on_text = cb
        arr, keep = self._media(media)
        out = ctypes.POINTER(capi.ngpt_turn_result)()
        return raised.result("ngpt_backbone_turn", out, lib.ngpt_turn_result_free,
                             lambda r: TurnResult(r, self._n_embd), self._h(), _cstr(text),
                             arr if keep else None, len(keep), ctypes.byref(p))
