"""nextgpt.Encoder: ImageBind, which turns images, sounds and videos into the embeddings the
input projector reads."""
import ctypes

from ._convert import _params, _path
from ._enums import Modality
from ._handle import _Handle
from ._library import capi, lib
from .error import _call
from .media import Audio, _with_image
from .tensor import Tensor, _new_tensor_out, _tensor_view


class Encoder(_Handle):
    """ngpt_encoder: ImageBind (vision and audio branches) on ctx's backend.

    path: imagebind_huge.pth, a .safetensors, or a folder with config.json + weights.
    modalities: "image", "audio", "video" names, Modality members or ENCODER_* bits to load (None =
    all stored)."""
    _free = "ngpt_encoder_free"
    _exclusive = True

    def __init__(self, ctx, path, modalities=None, compute_dtype=None, flags=None):
        """compute_dtype: Dtype.F32 (default), or BF16 (CPU) / F16 / BF16 (CUDA). flags:
        NGPT_ENCODER_FLAG_* bits (capi), e.g. capi.NGPT_ENCODER_FLAG_CUDA_GRAPH."""
        names = {"image": capi.NGPT_ENCODER_IMAGE, "audio": capi.NGPT_ENCODER_AUDIO,
                 "video": capi.NGPT_ENCODER_VIDEO}
        bits = 0
        for m in ([modalities] if isinstance(modalities, (str, int)) else modalities or []):
            if isinstance(m, Modality):
                m = m.name.lower()
            if isinstance(m, str):
                if m.lower() not in names:
                    raise ValueError("modality %r: expected image, audio or video" % m)
                bits |= names[m.lower()]
            else:
                bits |= int(m)
        p = _params(capi.ngpt_encoder_params, "ngpt_encoder_params_default", modalities=bits,
                    compute_dtype=compute_dtype, flags=flags)
        out = ctypes.POINTER(capi.ngpt_encoder)()
        _call("ngpt_encoder_create", ctypes.byref(out), ctx._h(), _path(path), ctypes.byref(p))
        self._adopt(out, ctx)

    @property
    def embed_dim(self):
        """The embedding size (1024 for imagebind_huge)."""
        return lib.ngpt_encoder_embed_dim(self._h())

    @property
    def modalities(self):
        """The capi.NGPT_ENCODER_* bits of the branches loaded."""
        return lib.ngpt_encoder_modalities(self._h())

    def encode_image(self, image):
        """One image (an Image, a PIL image, a numpy uint8 [h, w, 3] array, or a path): Tensor F32
        [1, embed_dim], L2-normalised."""
        return _with_image(image, self._encode_image)

    def _encode_image(self, image):
        t = _new_tensor_out()
        _call("ngpt_encoder_encode_image", self._h(), ctypes.byref(t), image._h())
        return Tensor(t)

    def encode_pixels(self, pixels):
        """Preprocessed pixels ([N, 3, 224, 224], ...): Tensor F32 [N, embed_dim]."""
        view, keep = _tensor_view(pixels)
        t = _new_tensor_out()
        _call("ngpt_encoder_encode_pixels", self._h(), ctypes.byref(t), view)
        return Tensor(t)

    def encode_fbank(self, fbank):
        """Fbank clips (Audio.preprocess's output): [S, 1, 128, 204] (one sound) or [N, S, 1, 128,
        204] -> Tensor F32 [N, embed_dim], the mean over each sound's clips."""
        view, keep = _tensor_view(fbank)
        t = _new_tensor_out()
        _call("ngpt_encoder_encode_fbank", self._h(), ctypes.byref(t), view)
        return Tensor(t)

    def encode_audio(self, audio):
        """One sound (an Audio, or a path): Tensor F32 [1, embed_dim]."""
        if isinstance(audio, Audio):
            return self._encode_audio(audio)
        with Audio(audio) as a:
            return self._encode_audio(a)

    def _encode_audio(self, audio):
        t = _new_tensor_out()
        _call("ngpt_encoder_encode_audio", self._h(), ctypes.byref(t), audio._h(), None)
        return Tensor(t)

    def encode_video_file(self, path):
        """One video file: Tensor F32 [1, embed_dim] (the mean over its 15 clips)."""
        t = _new_tensor_out()
        _call("ngpt_encoder_encode_video_file", self._h(), ctypes.byref(t), _path(path), None)
        return Tensor(t)
