"""nextgpt.Projector: NExT-GPT's projectors, ImageBind embeddings into the language model's soft
tokens and its signal-token states out into decoder conditioning."""
import ctypes

from ._convert import _i32, _modality_bits, _params, _path
from ._handle import _Handle
from ._library import capi, lib
from .error import _call
from .tensor import Tensor, _batch_of_one, _F32Rows, _new_tensor_out, _np, _tensor_view


class Projector(_Handle):
    """ngpt_projector: NExT-GPT's input projector (ImageBind embedding -> soft token) and output
    projectors (signal hidden states -> decoder conditioning), from a projector folder or the
    NExT-GPT delta. input: load the input projector; outputs: Modality values to load (both None
    = everything the file holds)."""
    _free = "ngpt_projector_free"
    _exclusive = True

    def __init__(self, ctx, path, input=None, outputs=None):
        bits = 0
        if outputs is not None and any(int(m) == capi.NGPT_MODALITY_TEXT
                                       for m in (outputs if not isinstance(outputs, int) else [outputs])):
            raise ValueError("outputs: TEXT has no output projector (input=True loads the input one)")
        if input or outputs is not None:
            bits = (capi.NGPT_PROJECTOR_INPUT if input else 0) | _modality_bits(outputs)
        p = _params(capi.ngpt_projector_params, "ngpt_projector_params_default", modalities=bits)
        out = ctypes.POINTER(capi.ngpt_projector)()
        _call("ngpt_projector_create", ctypes.byref(out), ctx._h(), _path(path), ctypes.byref(p))
        self._adopt(out, ctx)

    def input(self, features):
        """features [n, input_dim] (numpy or Tensor) -> Tensor F32 [n, llm_hidden]: one soft
        token per row."""
        view, keep = _tensor_view(features)
        t = _new_tensor_out()
        _call("ngpt_projector_input", self._h(), ctypes.byref(t), view)
        return Tensor(t)

    def input_sum(self, features):
        """Several items of one modality as NExT-GPT combines them: Tensor F32 [1, llm_hidden]."""
        view, keep = _tensor_view(features)
        t = _new_tensor_out()
        _call("ngpt_projector_input_sum", self._h(), ctypes.byref(t), view)
        return Tensor(t)

    def output(self, modality, hidden, input_embs):
        """hidden, input_embs [B, n_in, llm_hidden] (or [n_in, llm_hidden] for B = 1) -> Tensor
        F32 [B, n_out, out_dim]: the decoder's conditioning."""
        if _np is not None:
            hidden, input_embs = (_np.asarray(x, _np.float32) if not isinstance(x, Tensor) else x
                                  for x in (hidden, input_embs))
            hidden, input_embs = (x[None] if not isinstance(x, Tensor) and x.ndim == 2 else x
                                  for x in (hidden, input_embs))
        else:  # array('f') (a TurnGroup's, without numpy), floats or rows: [1, n, llm_hidden]
            hidden, input_embs = (x if isinstance(x, Tensor) else _F32Rows(x, self.llm_hidden_size)
                                  for x in (hidden, input_embs))
        hidden, input_embs = (_batch_of_one(x) for x in (hidden, input_embs))
        hv, keep_h = _tensor_view(hidden)
        ev, keep_e = _tensor_view(input_embs)
        t = _new_tensor_out()
        _call("ngpt_projector_output", self._h(), ctypes.byref(t), _i32(modality, "modality"), hv, ev)
        return Tensor(t)

    @property
    def has_input(self):
        return bool(lib.ngpt_projector_has_input(self._h()))

    def has_output(self, modality):
        return bool(lib.ngpt_projector_has_output(self._h(), _i32(modality, "modality")))

    @property
    def llm_hidden_size(self):
        return lib.ngpt_projector_llm_hidden_size(self._h())

    @property
    def input_dim(self):
        return lib.ngpt_projector_input_dim(self._h())

    def output_dim(self, modality):
        return lib.ngpt_projector_output_dim(self._h(), _i32(modality, "modality"))

    def num_input_tokens(self, modality):
        return lib.ngpt_projector_num_input_tokens(self._h(), _i32(modality, "modality"))

    def num_output_tokens(self, modality):
        return lib.ngpt_projector_num_output_tokens(self._h(), _i32(modality, "modality"))

    def d_model(self, modality):
        """The transformer width of modality's output projector (512 for NExT-GPT; 0 when not loaded)."""
        return lib.ngpt_projector_d_model(self._h(), _i32(modality, "modality"))

    def nhead(self, modality):
        """The attention heads of modality's output projector (4 for NExT-GPT; 0 when not loaded)."""
        return lib.ngpt_projector_nhead(self._h(), _i32(modality, "modality"))
