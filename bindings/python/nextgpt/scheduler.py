"""nextgpt.Scheduler: the diffusers noise schedulers, for a denoising loop written in Python
(samples stepped in place where the caller's array allows)."""
import ctypes

from ._convert import _i32, _params, _path
from ._enums import SchedulerKind
from ._handle import _Handle
from ._library import capi, lib
from .error import _call
from .tensor import _floats, _np


class Scheduler(_Handle):
    """ngpt_scheduler: DDIM, DDPM, PNDM, DPM-Solver (multistep or singlestep), UniPC or DEIS
    multistep, or one of the k-diffusion samplers (Euler, Euler ancestral, Heun, LMS, KDPM2, KDPM2
    ancestral) from a diffusers scheduler_config.json.

    Scheduler("sd/scheduler/scheduler_config.json") or Scheduler(json_text='{...}'); keyword
    params are the ngpt_scheduler_params fields (kind, prediction_type, algorithm_type,
    solver_type, solver_order, eta, use_clipped_model_output)."""
    _free = "ngpt_scheduler_free"
    _exclusive = True

    def __init__(self, config_path=None, json_text=None, **params):
        p = _params(capi.ngpt_scheduler_params, "ngpt_scheduler_params_default", **params)
        out = ctypes.POINTER(capi.ngpt_scheduler)()
        if (config_path is None) == (json_text is None):
            raise ValueError("give exactly one of config_path and json_text")
        if config_path is not None:
            _call("ngpt_scheduler_create", ctypes.byref(out), _path(config_path), ctypes.byref(p))
        else:
            data = json_text.encode("utf-8") if isinstance(json_text, str) else bytes(json_text)
            _call("ngpt_scheduler_create_from_json", ctypes.byref(out), data, len(data), ctypes.byref(p))
        self._adopt(out)

    @property
    def kind(self):
        return SchedulerKind(lib.ngpt_scheduler_get_kind(self._h()))

    def set_timesteps(self, n):
        _call("ngpt_scheduler_set_timesteps", self._h(), _i32(n, "steps"))

    @property
    def timesteps(self):
        """The timesteps in stepping order: a list of int, or of float for the k-diffusion samplers
        (whose timesteps are fractional; the model takes them rounded to float32)."""
        if self.kind in (SchedulerKind.EULER, SchedulerKind.EULER_ANCESTRAL, SchedulerKind.HEUN,
                         SchedulerKind.LMS, SchedulerKind.KDPM2, SchedulerKind.KDPM2_ANCESTRAL):
            ts = ctypes.POINTER(ctypes.c_double)()
            n = ctypes.c_size_t(0)
            _call("ngpt_scheduler_timesteps_f64", self._h(), ctypes.byref(ts), ctypes.byref(n))
            return ts[:n.value]
        ts = ctypes.POINTER(ctypes.c_int64)()
        n = ctypes.c_size_t(0)
        _call("ngpt_scheduler_timesteps", self._h(), ctypes.byref(ts), ctypes.byref(n))
        return ts[:n.value]

    @property
    def alphas_cumprod(self):
        acp = ctypes.POINTER(ctypes.c_float)()
        n = ctypes.c_size_t(0)
        _call("ngpt_scheduler_alphas_cumprod", self._h(), ctypes.byref(acp), ctypes.byref(n))
        return acp[:n.value]

    @property
    def init_noise_sigma(self):
        return lib.ngpt_scheduler_init_noise_sigma(self._h())

    def step(self, model_output, timestep, sample, variance_noise=None):
        """One denoising step. Returns the new sample: `sample` itself, updated in place, when it
        is a writable float32 C-contiguous numpy array or an array('f'); else a new one."""
        sp, n, keep_s, result = _floats(sample, writable=True)
        mp, nm, keep_m, _ = _floats(model_output)
        if nm != n:
            raise ValueError("model_output has %d values, sample %d" % (nm, n))
        vp, keep_v = None, None
        if variance_noise is not None:
            vp, nv, keep_v, _ = _floats(variance_noise)
            if nv != n:
                raise ValueError("variance_noise has %d values, sample %d" % (nv, n))
        _call("ngpt_scheduler_step_f64", self._h(), mp, float(timestep), sp, n, vp)
        return result

    def reset(self):
        _call("ngpt_scheduler_reset", self._h())

    def scale_model_input(self, sample, timestep):
        """The model's input at `timestep` (in place where `sample` allows, as step): unchanged,
        or divided by (sigma^2 + 1)^0.5 for the k-diffusion samplers."""
        sp, n, keep, result = _floats(sample, writable=True)
        _call("ngpt_scheduler_scale_model_input_f64", self._h(), sp, n, float(timestep))
        return result

    def add_noise(self, original, noise, timestep):
        """sqrt(acp[t]) * original + sqrt(1 - acp[t]) * noise (the k-diffusion samplers:
        original + sigma(t) * noise), a new array."""
        op, n, keep_o, _ = _floats(original)
        np_, nn, keep_n, _ = _floats(noise)
        if nn != n:
            raise ValueError("noise has %d values, original %d" % (nn, n))
        outp, _, keep_out, result = _floats(_np.zeros(n, _np.float32) if _np is not None else [0.0] * n,
                                            writable=True)
        _call("ngpt_scheduler_add_noise_f64", self._h(), outp, op, np_, n, float(timestep))
        if _np is not None and isinstance(original, _np.ndarray):
            return result.reshape(original.shape)
        return result
