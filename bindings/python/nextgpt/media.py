"""Image, Audio and the video_* functions: media files and pixels in, ImageBind's transforms,
encoded files out; what the stages read and the decoders' outputs become."""
import ctypes
import sys

from ._convert import _i32, _opt_cstr, _params, _path, _str
from ._enums import AudioFormat, ImageFormat, VideoFormat
from ._handle import _Handle, _busy_fn
from ._library import capi, lib
from .error import _call
from .tensor import Tensor, _floats, _new_tensor_out, _np, _reshaped, _tensor_view


def _is_pil(x):
    """Whether x is a PIL image. Pillow is not imported here: a caller holding one has done so."""
    m = sys.modules.get("PIL.Image")
    return m is not None and isinstance(x, m.Image)


def _with_image(image, fn):
    """fn(img) on an Image as it is, or on one made for the call from a PIL image, a numpy uint8
    [h, w, 3] array (Image.from_rgb8) or a path."""
    if isinstance(image, Image):
        return fn(image)
    if _is_pil(image):
        made = Image.from_pil(image)
    elif _np is not None and isinstance(image, _np.ndarray):
        made = Image.from_rgb8(image)
    else:
        made = Image(image)
    with made as img:
        return fn(img)


class Image(_Handle):
    """ngpt_image: a decoded RGB8 image. Image(path), Image.from_bytes(data), Image.from_rgb8(...),
    Image.from_pil(pil_image); to_pil()."""
    _free = "ngpt_image_free"

    def __init__(self, path=None, _ptr=None):
        if _ptr is None:
            _ptr = ctypes.POINTER(capi.ngpt_image)()
            _call("ngpt_image_load", ctypes.byref(_ptr), _path(path))
        self._adopt(_ptr)

    @classmethod
    def from_bytes(cls, data, name=None):
        out = ctypes.POINTER(capi.ngpt_image)()
        data = bytes(data)
        _call("ngpt_image_load_memory", ctypes.byref(out), data, len(data),
              _opt_cstr(name, "name"))
        return cls(_ptr=out)

    @classmethod
    def from_rgb8(cls, pixels, width=None, height=None, stride=0):
        """pixels: a numpy uint8 [h, w, 3] array, or bytes with width and height (rows of
        stride bytes, 0 = 3 * width). For float pixels in [0, 1] use from_tensor."""
        if _np is not None and isinstance(pixels, _np.ndarray):
            if pixels.dtype != _np.uint8:
                raise TypeError("from_rgb8 takes uint8 pixels, not %s (float in [0, 1]: Image.from_tensor)"
                                % pixels.dtype)
            a = _np.ascontiguousarray(pixels)
            if a.ndim != 3 or a.shape[2] != 3:
                raise ValueError("expected [height, width, 3] uint8, got %s" % (a.shape,))
            height, width = a.shape[:2]
            data = a.tobytes()
            if stride:
                raise ValueError("stride is for bytes input; an array is packed")
        else:
            data = bytes(pixels)
        if width is None or height is None:
            raise ValueError("bytes input needs width and height")
        width, height, stride = _i32(width, "width"), _i32(height, "height"), _i32(stride, "stride")
        if stride < 0:
            raise ValueError("stride %d is negative" % stride)
        # the C call reads height rows of stride bytes and takes no length: check it here
        row = stride or 3 * width
        if width > 0 and height > 0 and row >= 3 * width and len(data) < row * (height - 1) + 3 * width:
            raise ValueError("%d bytes of pixels, %dx%d with rows of %d bytes need %d" %
                             (len(data), width, height, row, row * (height - 1) + 3 * width))
        out = ctypes.POINTER(capi.ngpt_image)()
        buf = (ctypes.c_uint8 * max(len(data), 1)).from_buffer_copy(data or b"\0")
        _call("ngpt_image_from_rgb8", ctypes.byref(out), buf, int(width), int(height), stride)
        return cls(_ptr=out)

    @classmethod
    def from_pil(cls, image):
        """A PIL (Pillow) image, converted with image.convert("RGB") as ImageBind's loader does
        (palette, gray, alpha and CMYK images alike)."""
        if not _is_pil(image):
            raise TypeError("from_pil takes a PIL.Image.Image, not %s" % type(image).__name__)
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        return cls.from_rgb8(rgb.tobytes(), rgb.width, rgb.height)

    def to_pil(self):
        """The pixels as a PIL (Pillow) RGB image (ImportError without Pillow)."""
        from PIL import Image as _PILImage
        n = self.width * self.height * 3
        return _PILImage.frombytes("RGB", (self.width, self.height),
                                   ctypes.string_at(lib.ngpt_image_pixels(self._h()), n))

    @property
    def width(self):
        return lib.ngpt_image_width(self._h())

    @property
    def height(self):
        return lib.ngpt_image_height(self._h())

    def pixels(self):
        """Packed RGB8: a numpy uint8 [h, w, 3] array, or bytes without numpy."""
        n = self.width * self.height * 3
        data = ctypes.string_at(lib.ngpt_image_pixels(self._h()), n)
        if _np is None:
            return data
        return _np.frombuffer(data, _np.uint8).reshape(self.height, self.width, 3).copy()

    def preprocess(self):
        """ImageBind's vision transform: a Tensor F32 [3, 224, 224]."""
        t = _new_tensor_out()
        _call("ngpt_image_preprocess", ctypes.byref(t), self._h())
        return Tensor(t)

    @classmethod
    def from_tensor(cls, pixels):
        """An image from pixels [H, W, 3]: uint8, or float32 in [0, 1] (rounded as diffusers'
        numpy_to_pil). pixels: a numpy array or a Tensor; a batch of one, [1, H, W, 3] (what
        Decoder.generate returns for one image), is taken as its image."""
        view, keep = _tensor_view(pixels)
        if view is not None and view.contents.rank == 4 and view.contents.shape[0] == 1:
            src = view.contents
            view = ctypes.pointer(_reshaped(src, tuple(src.shape[1:4]), keep))
        out = ctypes.POINTER(capi.ngpt_image)()
        _call("ngpt_image_from_tensor", ctypes.byref(out), view)
        return cls(_ptr=out)

    def encode(self, format="png", quality=0):
        """The encoded file as bytes; format "png" or "jpeg" (quality 1..100, 0 = 90)."""
        blob = ctypes.POINTER(capi.ngpt_blob)()
        _call("ngpt_image_encode", ctypes.byref(blob), self._h(), _image_format(format), _i32(quality, "quality"), 0)
        return _take_blob(blob)

    def save(self, path, format=None, quality=0):
        """Encode and write to path; format None = from the extension (.png, .jpg/.jpeg)."""
        _call("ngpt_image_save", self._h(), _path(path), _image_format(format), _i32(quality, "quality"), 0)

    @staticmethod
    def postprocess(image):
        """F32 [B, 3, H, W] (numpy or Tensor) -> Tensor U8 [B, H, W, 3]."""
        view, keep = _tensor_view(image)
        t = _new_tensor_out()
        _call("ngpt_image_postprocess", ctypes.byref(t), view)
        return Tensor(t)


def _image_format(fmt):
    I = ImageFormat
    return _named_format(fmt, I, {"png": I.PNG, "jpeg": I.JPEG, "jpg": I.JPEG}, "image")


class Audio(_Handle):
    """ngpt_audio: decoded float samples. Audio(path), Audio.from_bytes(data), Audio.from_pcm(...)."""
    _free = "ngpt_audio_free"

    def __init__(self, path=None, _ptr=None):
        if _ptr is None:
            _ptr = ctypes.POINTER(capi.ngpt_audio)()
            _call("ngpt_audio_load", ctypes.byref(_ptr), _path(path))
        self._adopt(_ptr)

    @classmethod
    def from_bytes(cls, data, name=None):
        out = ctypes.POINTER(capi.ngpt_audio)()
        data = bytes(data)
        _call("ngpt_audio_load_memory", ctypes.byref(out), data, len(data),
              _opt_cstr(name, "name"))
        return cls(_ptr=out)

    @classmethod
    def from_pcm(cls, samples, channels, sample_rate):
        """samples: interleaved floats [frames][channels] (flat sequence or numpy array)."""
        sp, n, keep, _ = _floats(samples)
        channels, sample_rate = _i32(channels, "channels"), _i32(sample_rate, "sample_rate")
        if channels > 0 and n % channels:
            raise ValueError("%d samples are not whole frames of %d channels" % (n, channels))
        out = ctypes.POINTER(capi.ngpt_audio)()
        _call("ngpt_audio_from_pcm", ctypes.byref(out), sp, n // max(channels, 1), channels, sample_rate)
        return cls(_ptr=out)

    @property
    def sample_rate(self):
        return lib.ngpt_audio_sample_rate(self._h())

    @property
    def channels(self):
        return lib.ngpt_audio_channels(self._h())

    @property
    def frames(self):
        return lib.ngpt_audio_frames(self._h())

    def samples(self):
        """Interleaved samples: numpy float32 [frames, channels], or a list without numpy."""
        n = self.frames * self.channels
        p = lib.ngpt_audio_samples(self._h())
        if _np is None:
            return p[:n]
        return _np.ctypeslib.as_array(p, (n,)).reshape(self.frames, self.channels).copy() if n else \
            _np.zeros((0, self.channels), _np.float32)

    def encode(self, format="wav"):
        """The encoded file as bytes at the sound's rate and channel count; format "wav" (16-bit
        PCM), "wav_float" (32-bit float), "flac" (16-bit) or "ogg" (Vorbis), or an AudioFormat."""
        blob = ctypes.POINTER(capi.ngpt_blob)()
        _call("ngpt_audio_encode", ctypes.byref(blob), self._h(), _audio_format(format))
        return _take_blob(blob)

    def save(self, path, format=None):
        """Encode and write to path; format None = from the extension (.wav: 16-bit PCM, .flac,
        .ogg/.oga)."""
        _call("ngpt_audio_save", self._h(), _path(path), _audio_format(format))

    def preprocess(self, clip_rule=None):
        """ImageBind's audio transform: a Tensor F32 [3, 1, 128, 204]."""
        p = _params(capi.ngpt_audio_preprocess_params, "ngpt_audio_preprocess_params_default",
                    clip_rule=clip_rule)
        t = _new_tensor_out()
        _call("ngpt_audio_preprocess", ctypes.byref(t), self._h(), ctypes.byref(p))
        return Tensor(t)


def _take_blob(blob):
    """The bytes of an ngpt_blob, which is freed."""
    try:
        return ctypes.string_at(lib.ngpt_blob_data(blob), lib.ngpt_blob_size(blob))
    finally:
        lib.ngpt_blob_free(blob)


def _named_format(fmt, enum_cls, names, what):
    """None -> AUTO; a name (case-insensitive) -> its value; an enum member or int unchanged."""
    if fmt is None:
        return int(enum_cls.AUTO)
    if isinstance(fmt, str):
        if fmt.lower() not in names:
            raise ValueError("%s format %r: expected one of %s" % (what, fmt, ", ".join(sorted(names))))
        return int(names[fmt.lower()])
    return _i32(fmt, what + " format")


def _audio_format(fmt):
    A = AudioFormat
    return _named_format(fmt, A, {"wav": A.WAV16, "wav16": A.WAV16, "wav_float": A.WAV_FLOAT, "flac": A.FLAC,
                                  "ogg": A.OGG}, "audio")


def _video_format(fmt):
    V = VideoFormat
    return _named_format(fmt, V, {"mp4": V.MP4, "webm": V.WEBM}, "video")


def video_preprocess(video, clip_rule=None, name=None):
    """ImageBind's video transform of a file path (str/PathLike) or bytes: a Tensor F32
    [15, 3, 2, 224, 224]."""
    p = _params(capi.ngpt_video_preprocess_params, "ngpt_video_preprocess_params_default",
                clip_rule=clip_rule)
    t = _new_tensor_out()
    if isinstance(video, (bytes, bytearray, memoryview)):
        data = bytes(video)
        _call("ngpt_video_preprocess_memory", ctypes.byref(t), data, len(data),
              _opt_cstr(name, "name"), ctypes.byref(p))
    else:
        _call("ngpt_video_preprocess", ctypes.byref(t), _path(video), ctypes.byref(p))
    return Tensor(t)


@_busy_fn
def video_postprocess(video):
    """Zeroscope's last step (diffusers' tensor2vid): F32 [B, 3, F, H, W] (numpy or Tensor, a VAE
    output) -> Tensor U8 [F, H, B*W, 3] (truncated, not rounded; a batch side by side)."""
    view, keep = _tensor_view(video)
    t = _new_tensor_out()
    _call("ngpt_video_postprocess", ctypes.byref(t), view)
    return Tensor(t)


@_busy_fn
def video_encode(frames, fps=8.0, format="mp4"):
    """Frames U8 [F, H, W, 3] (numpy or Tensor; H and W even) encoded at fps (NExT-GPT: 8) as
    bytes; format "mp4" (H.264, else MPEG-4 part 2) or "webm" (VP9, else VP8), or a VideoFormat."""
    view, keep = _tensor_view(frames)
    blob = ctypes.POINTER(capi.ngpt_blob)()
    _call("ngpt_video_encode", ctypes.byref(blob), view, float(fps), _video_format(format))
    return _take_blob(blob)


@_busy_fn
def video_save(frames, path, fps=8.0, format=None):
    """Encode frames (as video_encode) and write them to path; format None = from the extension
    (.mp4, .webm)."""
    view, keep = _tensor_view(frames)
    _call("ngpt_video_save", view, _path(path), float(fps), _video_format(format))


def video_codec(format="mp4"):
    """The FFmpeg encoder this build uses for a video format ("libx264", "mpeg4", "libvpx-vp9",
    "libvpx"), or None when it has none."""
    return _str(lib.ngpt_media_video_codec(_video_format(format)))
