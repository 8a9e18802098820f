"""nextgpt.Tokenizer: text to LLaMA token ids and back, the C calls' two-call sizing hidden."""
import ctypes

from ._convert import _cstr, _i32, _path, _str
from ._handle import _Handle
from ._library import capi, lib
from .error import Error, _call, _last_error


class Tokenizer(_Handle):
    """ngpt_tokenizer: the LLaMA tokenizer (+ NExT-GPT's added tokens) of a tokenizer folder."""
    _free = "ngpt_tokenizer_free"

    def __init__(self, model_dir):
        out = ctypes.POINTER(capi.ngpt_tokenizer)()
        _call("ngpt_tokenizer_create", ctypes.byref(out), _path(model_dir))
        self._adopt(out)

    def encode(self, text, add_bos=True):
        """Token ids (list of int) of text (str or UTF-8 bytes)."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        n = ctypes.c_size_t(0)
        st = lib.ngpt_tokenizer_encode(self._h(), data, len(data), int(add_bos), None, 0, ctypes.byref(n))
        if st not in (capi.NGPT_OK, capi.NGPT_ERR_BUFFER_TOO_SMALL):
            raise Error(st, _last_error(), "ngpt_tokenizer_encode")
        ids = (ctypes.c_int32 * max(n.value, 1))()
        _call("ngpt_tokenizer_encode", self._h(), data, len(data), int(add_bos), ids, n.value, ctypes.byref(n))
        return list(ids[:n.value])

    def decode_bytes(self, ids, skip_special_tokens=False):
        """The UTF-8 bytes of ids (may contain NUL from the byte token <0x00>)."""
        ids = [_i32(i) for i in ids]
        arr = (ctypes.c_int32 * max(len(ids), 1))(*ids)
        n = ctypes.c_size_t(0)
        st = lib.ngpt_tokenizer_decode(self._h(), arr, len(ids), int(skip_special_tokens), None, 0,
                                       ctypes.byref(n))
        if st not in (capi.NGPT_OK, capi.NGPT_ERR_BUFFER_TOO_SMALL):
            raise Error(st, _last_error(), "ngpt_tokenizer_decode")
        buf = ctypes.create_string_buffer(n.value + 1)
        _call("ngpt_tokenizer_decode", self._h(), arr, len(ids), int(skip_special_tokens), buf,
              n.value + 1, ctypes.byref(n))
        return buf.raw[:n.value]

    def decode(self, ids, skip_special_tokens=False):
        """The text of ids (str)."""
        return self.decode_bytes(ids, skip_special_tokens).decode("utf-8", "replace")

    @property
    def vocab_size(self):
        return lib.ngpt_tokenizer_vocab_size(self._h())

    def __len__(self):
        return self.vocab_size

    def token_to_piece(self, id):
        """The stored piece of id ("▁the", "<0x0A>", "[IMG0]"); None when out of range."""
        return _str(lib.ngpt_tokenizer_token_to_piece(self._h(), _i32(id)))

    def piece_to_id(self, piece):
        """The id of exactly this piece, or None."""
        i = lib.ngpt_tokenizer_piece_to_id(self._h(), _cstr(piece, "piece"))
        return None if i < 0 else i

    @property
    def bos_id(self):
        i = lib.ngpt_tokenizer_bos_id(self._h())
        return None if i < 0 else i

    @property
    def eos_id(self):
        i = lib.ngpt_tokenizer_eos_id(self._h())
        return None if i < 0 else i
