"""CUDA's device rules, emulated on the CPU, so that the tests find device bugs on a machine without a GPU.

    with EmulatedCuda() as cuda:
        model = model.to("cuda")                      # "moved": still on the CPU, but tagged and reported as cuda:0
        x = torch.randn((4, 1, 28, 28), device="cuda")
        ...
        cuda.counts                                   # {"h2d": host-to-device copies, "d2h": reads back, "sync": ...}

Inside the `with` block a torch.overrides.TorchFunctionMode sees every torch call. A tensor moved to "cuda" or
created there is tagged (it stays on the CPU, so everything runs); `.device` says cuda:0, `.is_cuda` True. Like
CUDA, the mode raises

    - on an operation that mixes a tagged tensor with an untagged CPU tensor of ndim >= 1 (a 0-dim CPU tensor is a
      scalar, which CUDA accepts): "Expected all tensors to be on the same device ...";
    - on a random operation whose generator's device differs from its output's: "Expected a 'cuda' device type for
      generator but found 'cpu'";
    - on `.numpy()` (or numpy.asarray) of a tagged tensor: "can't convert cuda:0 device type tensor to numpy";
    - on indexing an untagged CPU tensor with tagged indices: "indices should be either on cpu or on the same
      device as the indexed tensor (cpu)".

It also counts what would cost a GPU run its speed: host-to-device copies ("h2d": `.to("cuda")` of a CPU tensor,
torch.tensor(data, device="cuda"), CPU indices or values in a CUDA indexing), reads back to the host ("d2h":
`.item()`, float(), int(), bool(), `.tolist()`, `.cpu()`, printing, a boolean-mask index or nonzero, which must wait
for the GPU), and explicit torch.cuda.synchronize calls ("sync").

While the mode is on, torch.Generator(device="cuda") makes an emulated CUDA generator (a CPU generator that reports
cuda:0). Like a real one, it draws another stream than a CPU generator of the same seed: a library function that
draws seeded noise on the GPU therefore shows different pictures here, and a test comparing with the CPU sees it.
torch.cuda.synchronize counts, torch.cuda.is_available / device_count say there is one card, and
torch.cuda.get_device_name / get_device_capability / is_bf16_supported / mem_get_info describe the emulated card: by default a T4 (compute capability 7.5, what a free Colab GPU is).

Not emulated: speed, memory, CUDA's own arithmetic (TF32, cuDNN), and autocast on "cuda" (torch disables it, with a
warning, where no GPU is present).
"""
from __future__ import annotations

import contextlib
import os
import traceback
from collections import Counter

import torch
from torch.overrides import TorchFunctionMode

CUDA0 = torch.device("cuda", 0)
_TAG = "_emulated_cuda"
_SEED_SHIFT = 0x9E3779B97F4A7C15     # an emulated CUDA generator seeded with k draws the CPU stream of seed k ^ this

MIXED_DEVICES = "Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!"
CPU_INDEXED_BY_CUDA = "indices should be either on cpu or on the same device as the indexed tensor (cpu)"
TO_NUMPY = ("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor to host memory "
            "first.")

# Reads that wait for the GPU and bring a value back to the host.
_READS = {"item", "__float__", "__int__", "__bool__", "__index__", "__complex__", "tolist", "__repr__", "__str__",
          "__format__", "nonzero", "masked_select", "unique", "equal", "allclose", "argwhere"}
_NUMPY = {"numpy", "__array__"}


def is_emulated_cuda(t) -> bool:
    """Whether `t` is a tensor that lives on the emulated CUDA device."""
    return isinstance(t, torch.Tensor) and t.__dict__.get(_TAG, False)


def _tag(obj, on_cuda: bool):
    for t in _tensors(obj):
        if on_cuda:
            t.__dict__[_TAG] = True
        else:
            t.__dict__.pop(_TAG, None)
    return obj


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


def _is_cuda_device(device) -> bool | None:
    """True for a CUDA device ("cuda", "cuda:0", torch.device("cuda")), False for another, None for no device."""
    if device is None:
        return None
    if isinstance(device, int):
        return True                                   # torch reads a bare int as a CUDA ordinal
    try:
        return torch.device(device).type == "cuda"
    except (RuntimeError, TypeError):
        return None


def _cpu_instead(obj):
    """obj with every CUDA device in it replaced by the CPU."""
    if isinstance(obj, (str, torch.device)) and _is_cuda_device(obj):
        return torch.device("cpu")
    if isinstance(obj, (list, tuple)) and not isinstance(obj, torch.Size):
        return type(obj)(_cpu_instead(o) for o in obj)
    return obj


class _GeneratorMeta(type(torch.Generator)):
    def __instancecheck__(cls, obj):
        return isinstance(obj, _REAL_GENERATOR)


_REAL_GENERATOR = torch.Generator


class EmulatedGenerator(_REAL_GENERATOR, metaclass=_GeneratorMeta):
    """torch.Generator while the mode is on: device="cuda" gives a CPU generator that reports cuda:0 and draws another
    stream than a CPU generator of the same seed, as a real CUDA generator does."""

    def __new__(cls, device="cpu"):
        on_cuda = bool(_is_cuda_device(device))
        gen = _REAL_GENERATOR.__new__(_CudaGenerator if on_cuda else _REAL_GENERATOR)
        if on_cuda:
            _REAL_GENERATOR.manual_seed(gen, _REAL_GENERATOR.initial_seed(gen) ^ _SEED_SHIFT)
        return gen


class _CudaGenerator(_REAL_GENERATOR):
    @property
    def device(self):
        return CUDA0

    def manual_seed(self, seed):
        _REAL_GENERATOR.manual_seed(self, (int(seed) ^ _SEED_SHIFT) % 2**64)
        return self

    def initial_seed(self):
        return _REAL_GENERATOR.initial_seed(self) ^ _SEED_SHIFT


def _generator_on_cuda(args, kwargs) -> bool | None:
    gen = kwargs.get("generator")
    if gen is None:
        gen = next((a for a in args if isinstance(a, _REAL_GENERATOR)), None)
    return None if gen is None else isinstance(gen, _CudaGenerator)


def _descriptor_name(func) -> str | None:
    """'device' for Tensor.device.__get__ and the like (getters and setters of tensor attributes)."""
    owner = getattr(func, "__self__", None)
    if getattr(func, "__name__", None) in ("__get__", "__set__") and owner is not None:
        return getattr(owner, "__name__", None)
    return None


def _group_by_device_and_dtype(real):
    """torch's grouping of tensor lists by device (for foreach kernels) reads the real device, the CPU; report the
    emulated one, so that optimizers and clip_grad_norm_ move their scalars to cuda:0 as on a GPU."""
    def grouped(tensorlistlist, with_indices=False):
        out = real(tensorlistlist, with_indices)
        fixed = {}
        for (device, dtype), value in out.items():
            lists = value[0]
            on_cuda = any(is_emulated_cuda(t) for lst in lists for t in lst if t is not None)
            fixed[(CUDA0 if on_cuda else device, dtype)] = value
        return fixed
    return grouped


def _parameter_new(real):
    """nn.Parameter(data) makes a new tensor object (copy.deepcopy of a module does this): it stays where data is."""
    def new(cls, data=None, requires_grad=True):
        param = real(cls, data, requires_grad)
        if is_emulated_cuda(data):
            _tag(param, True)
        return param
    return staticmethod(new)


class EmulatedCuda(TorchFunctionMode):
    """The emulation (see the module's docstring). capability: the emulated card's compute capability, (7, 5) for a
    T4; (8, 0) for an A100."""

    def __init__(self, capability: tuple[int, int] = (7, 5), trace: bool = False):
        super().__init__()
        self.capability = capability
        self.counts = Counter()
        self.trace = [] if trace else None        # (kind, op, the caller's file:line) per counted event
        self._patches = contextlib.ExitStack()

    # -- counting
    def reset(self) -> None:
        self.counts.clear()
        if self.trace is not None:
            self.trace.clear()

    def _count(self, kind: str, op: str) -> None:
        self.counts[kind] += 1
        if self.trace is not None:
            frames = [f for f in traceback.extract_stack()[:-3] if "cuda_emulation" not in f.filename
                      and "/torch/" not in f.filename]
            where = f"{os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else "?"
            self.trace.append((kind, op, where))

    def snapshot(self) -> dict:
        return {k: self.counts[k] for k in ("h2d", "d2h", "sync")}

    # -- entering: the mode, and torch.Generator / torch.cuda's few functions
    def __enter__(self):
        p = self._patches
        p.enter_context(_patched(torch, "Generator", EmulatedGenerator))
        p.enter_context(_patched(torch.nn.Parameter, "__new__", _parameter_new(torch.nn.Parameter.__new__)))
        p.enter_context(_patched(torch.cuda, "synchronize", self._synchronize))
        p.enter_context(_patched(torch.cuda, "get_device_name", lambda device=None: "Emulated CUDA device (on the CPU)"))
        p.enter_context(_patched(torch.cuda, "get_device_capability", lambda device=None: self.capability))
        p.enter_context(_patched(torch.cuda, "is_bf16_supported", lambda *a, **k: self.capability >= (8, 0)))
        p.enter_context(_patched(torch.cuda, "mem_get_info", lambda device=None: (15 * 2**30, 16 * 2**30)))
        p.enter_context(_patched(torch.cuda, "is_available", lambda: True))
        p.enter_context(_patched(torch.cuda, "device_count", lambda: 1))
        # optimizers ask a present CUDA whether it is capturing a graph: the emulated one never is
        p.enter_context(_patched(torch.optim.Optimizer, "_accelerator_graph_capture_health_check", lambda self: None))
        p.enter_context(_patched(torch._C, "_group_tensors_by_device_and_dtype",
                                 _group_by_device_and_dtype(torch._C._group_tensors_by_device_and_dtype)))
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._patches.close()

    def _synchronize(self, device=None):
        self._count("sync", "synchronize")

    # -- the rules
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        attribute = _descriptor_name(func)
        if attribute is not None:
            return self._attribute(func, attribute, args)
        self_tensor = args[0] if args and isinstance(args[0], torch.Tensor) else None
        self_cuda = is_emulated_cuda(self_tensor)

        if name in ("to", "cuda", "cpu") and self_tensor is not None:
            return self._move(func, name, args, kwargs)
        if name == "pin_memory":
            return args[0]
        if name == "is_pinned":
            return False
        if name in _NUMPY and self_cuda:
            raise TypeError(TO_NUMPY)
        if name in ("__getitem__", "__setitem__"):
            return self._index(func, name, args, kwargs)
        if name == "__iter__" and self_cuda:
            return iter([_tag(t, True) for t in args[0].unbind(0)])
        if name in ("copy_", "_has_compatible_shallow_copy_type", "set_"):
            src = args[1] if len(args) > 1 else kwargs.get("src", kwargs.get("source"))
            if name == "copy_" and src is not None and self_cuda != is_emulated_cuda(src):
                self._count("h2d" if self_cuda else "d2h", name)
            out = func(*args, **kwargs)
            if name == "set_":
                _tag(args[0], is_emulated_cuda(src))
            return out

        # which device the output lives on: an explicit device argument, else the inputs'
        tensors = [t for t in _tensors((args, kwargs))]
        any_cuda = any(is_emulated_cuda(t) for t in tensors)
        if any_cuda and any(not is_emulated_cuda(t) and t.ndim >= 1 for t in tensors):
            raise RuntimeError(f"{MIXED_DEVICES} (in {name})")
        device_cuda = _is_cuda_device(kwargs.get("device"))
        out_cuda = any_cuda if device_cuda is None else device_cuda
        gen_cuda = _generator_on_cuda(args, kwargs)
        if gen_cuda is not None and gen_cuda != out_cuda:
            raise RuntimeError(f"Expected a '{'cuda' if out_cuda else 'cpu'}' device type for generator but found "
                               f"'{'cuda' if gen_cuda else 'cpu'}'")
        if name in _READS and any_cuda:
            self._count("d2h", name)
        if out_cuda and name in ("tensor", "as_tensor", "new_tensor"):
            self._count("h2d", name)
        if "device" in kwargs:
            kwargs = {**kwargs, "device": _cpu_instead(kwargs["device"])}
        out = func(*args, **kwargs)
        if name in _READS or name in ("__repr__", "__format__"):
            return out
        if out_cuda:
            _tag(out, True)
        return out

    def _attribute(self, func, attribute, args):
        tensor = args[0]
        on_cuda = is_emulated_cuda(tensor)
        if func.__name__ == "__set__":
            out = func(*args)
            if attribute == "data":
                _tag(tensor, is_emulated_cuda(args[1]))
            return out
        if attribute == "device":
            return CUDA0 if on_cuda else func(*args)
        if attribute == "is_cuda":
            return on_cuda
        if attribute == "is_cpu":
            return not on_cuda and func(*args)
        out = func(*args)
        if on_cuda and isinstance(out, torch.Tensor):
            _tag(out, True)
        return out

    def _move(self, func, name, args, kwargs):
        tensor = args[0]
        src_cuda = is_emulated_cuda(tensor)
        if name == "cuda":
            target = True
        elif name == "cpu":
            target = False
        elif len(args) > 1 and isinstance(args[1], torch.Tensor):
            target = is_emulated_cuda(args[1])
        else:
            device = kwargs.get("device", args[1] if len(args) > 1 and not isinstance(args[1], torch.dtype) else None)
            target = _is_cuda_device(device)
            target = src_cuda if target is None else target
        if name == "cuda":
            out = tensor.clone() if not src_cuda else tensor
        elif name == "cpu":
            out = tensor.clone() if src_cuda else tensor
        else:
            out = func(*_cpu_instead(args), **{k: _cpu_instead(v) for k, v in kwargs.items()})
            if out is tensor and target != src_cuda:
                out = tensor.clone()
        if target != src_cuda:
            self._count("h2d" if target else "d2h", name)
        if out is not tensor:
            _tag(out, target)
        return out

    def _index(self, func, name, args, kwargs):
        tensor, index = args[0], args[1]
        on_cuda = is_emulated_cuda(tensor)
        indices = list(_tensors(index))
        if not on_cuda and any(is_emulated_cuda(i) for i in indices):
            raise RuntimeError(CPU_INDEXED_BY_CUDA)
        if on_cuda:
            if any(not is_emulated_cuda(i) and i.ndim >= 1 for i in indices):
                self._count("h2d", name)                 # CUDA copies CPU indices to the device first
            if any(i.dtype == torch.bool for i in indices):
                self._count("d2h", name)                 # a mask's number of True entries is read back
        if name == "__setitem__":
            value = args[2]
            if isinstance(value, torch.Tensor) and on_cuda != is_emulated_cuda(value) and value.ndim >= 1:
                self._count("h2d" if on_cuda else "d2h", name)
            return func(*args, **kwargs)
        return _tag(func(*args, **kwargs), on_cuda)


@contextlib.contextmanager
def _patched(owner, name, value):
    old = owner.__dict__[name] if isinstance(owner, type) and name in owner.__dict__ else getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


# ----------------------------------------------------------------------------- in a notebook kernel

def install(capability: tuple[int, int] = (7, 5)) -> EmulatedCuda:
    """Turn the emulation on for the rest of this process: the start-up file that conftest.py writes for notebook
    kernels under DIFFUSION_LIB_EMULATE_CUDA=1 calls this."""
    mode = EmulatedCuda(capability)
    mode.__enter__()
    return mode
