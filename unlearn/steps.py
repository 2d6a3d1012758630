"""How training steps run on the device, not what they compute: precision (autocast, fp16's loss scaler),
channels_last, torch.compile and cuDNN's algorithms (`Compute`, `fast=true`), one optimiser step over micro-batches
(`accumulated_step`), the compile clock that keeps compilation out of RTE, and the fast recipes' weight averaging
(`Lookahead`). The loops that take these steps are unlearn/train.py (`fit`) and the methods (unlearn/methods/)."""
from __future__ import annotations

import contextlib
import functools
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from unlearn.checks import ConfigError, require

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # autocast dtype of forward passes
CUDNN = ("deterministic", "benchmark")


@dataclass(frozen=True)
class Compute:
    """How training steps run on the device, not what they compute: `precision` is the autocast dtype of forward
    passes (fp16 adds a GradScaler), `channels_last` stores conv weights NHWC, `compile` runs torch.compile on
    the model's forward, `cudnn` picks deterministic or benchmarked cuDNN algorithms (GPU only). fp32 with
    the rest off runs the plain loop, op for op (bit-identical weights)."""

    precision: str
    channels_last: bool
    compile: bool
    cudnn: str

    def __post_init__(self):
        require([
            ("precision", self.precision in PRECISIONS, f"one of {tuple(PRECISIONS)}"),
            ("channels_last", isinstance(self.channels_last, bool), "true or false"),
            ("compile", isinstance(self.compile, bool), "true or false"),
            ("cudnn", self.cudnn in CUDNN, f"one of {CUDNN}"),
        ], vars(self))

    @property
    def plain(self) -> bool:
        """True when steps run exactly as the plain fp32 loop (the cache keys of trained models leave it out)."""
        return self.precision == "fp32" and not self.channels_last and not self.compile

    def prepare(self, model: nn.Module) -> nn.Module:
        """Set cuDNN's flags and convert / compile `model` in place (parameter names and state dict unchanged)."""
        torch.backends.cudnn.benchmark = self.cudnn == "benchmark"
        torch.backends.cudnn.deterministic = self.cudnn == "deterministic"
        if self.channels_last:
            model.to(memory_format=torch.channels_last)  # 4-D weights only; a no-op for linear and text models
        if self.compile and getattr(model, "_compiled_call_impl", None) is None:
            model.compile()
        return model

    def stepper(self, model: nn.Module, opt: torch.optim.Optimizer) -> "Stepper":
        """The step mechanics of a loop optimising `model` with `opt` (one GradScaler per optimiser)."""
        self.prepare(model)
        if opt not in _STEPPERS:
            device = next(model.parameters()).device
            _STEPPERS[opt] = Stepper(PRECISIONS[self.precision], device, opt)
        return _STEPPERS[opt]


PLAIN = Compute(precision="fp32", channels_last=False, compile=False, cudnn="deterministic")
# fast=true: what it sets on a GPU, and the part of it that is safe on the CPU (channels_last's convolution backward
# corrupts memory there on AVX2 machines; cuDNN does not run there)
FAST = {"cuda": {"precision": "bf16", "channels_last": True, "cudnn": "benchmark"}, "cpu": {"precision": "bf16"}}


def apply_fast(cfg, device: torch.device) -> str | None:
    """`fast=true`: bf16 autocast (unless fp16 was asked for), channels_last and cuDNN benchmark on a GPU, only bf16
    on the CPU, written into `cfg` (so the results row and the cache keys say what ran); returns what it did.
    Not bit-reproducible: bf16 rounds, and benchmark picks cuDNN algorithms by timing. Its value was checked with
    the config's others (validate.check_config)."""
    if cfg.get("fast", False) is not True:
        return None
    native = cfg.precision == "fp16" or bf16_native(device)
    if device.type == "cuda" and not native:  # emulated bf16 would make fast=true slower than fp32
        name, (major, minor) = torch.cuda.get_device_name(device), torch.cuda.get_device_capability(device)
        raise ConfigError(f"fast=true: the GPU {name} (compute capability {major}.{minor}) has no native bf16 "
                          f"(compute capability 8.0 or newer); allowed here: fast=true precision=fp16 (loss-scaled "
                          f"fp16, with channels_last and cudnn=benchmark), or fast=false")
    setting = FAST["cuda" if device.type == "cuda" else "cpu"]
    for key, value in setting.items():
        if not (key == "precision" and cfg.precision == "fp16"):  # fp16 asked for: kept
            cfg[key] = value
    done = ", ".join(f"{k}={cfg[k]}" for k in setting)
    if device.type != "cuda":
        slow = "" if native is not False else (" This CPU has no bf16 instructions (avx512_bf16, amx_bf16): bf16 "
                                               "is emulated, likely slower than fp32 (fast=false).")
        return (f"fast=true on the CPU: {done} only; channels_last and cudnn=benchmark are GPU options "
                f"(channels_last's convolution backward corrupts memory on AVX2 CPUs). Not bit-reproducible.{slow}")
    return f"fast=true: {done} (not bit-reproducible)"


EMULATED_BF16 = ("this CPU has no bf16 instructions (avx512_bf16, amx_bf16), so precision=bf16 is emulated: "
                 "training runs many times slower than in fp32 here (scripts/bench_tier_precision.py measures the "
                 "ratio; docs/tier.md). The numbers are this instruction set's; precision=fp32 runs at full speed "
                 "but is another configuration (other cache keys and numbers)")


def emulated_bf16(cfg, device: torch.device) -> str | None:
    """The warning for a run asking for bf16 autocast (the CIFAR-10 tier's step mechanics) on a CPU that emulates
    it, or None. `fast=true` says it in its own note (apply_fast)."""
    if device.type != "cpu" or cfg.get("precision") != "bf16" or cfg.get("fast", False) is True:
        return None
    return EMULATED_BF16 if bf16_native(device) is False else None


def bf16_native(device: torch.device) -> bool | None:
    """Whether `device` computes bf16 in hardware: a GPU of compute capability 8.0+ (Ampere), a CPU with avx512_bf16
    or amx_bf16 (/proc/cpuinfo); None when that cannot be told (a CPU without /proc/cpuinfo, another device)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return None
    flags = _cpu_flags()
    return None if flags is None else bool({"avx512_bf16", "amx_bf16"} & flags)


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str] | None:
    """The CPU's flags from /proc/cpuinfo, read once per process (a table's planner asks for every job)."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), None)
    except OSError:
        return None
    return None if flags is None else frozenset(flags)


_STEPPERS: "weakref.WeakKeyDictionary[torch.optim.Optimizer, Stepper]" = weakref.WeakKeyDictionary()


class Stepper:
    """`with stepper.autocast(): loss = ...` then `stepper(loss, before_step)`: zero the gradients, backward
    (scaled under fp16), the hook on the true gradients, and the optimiser step (skipped on inf under fp16)."""

    def __init__(self, dtype: torch.dtype | None, device: torch.device, opt: torch.optim.Optimizer):
        self.dtype, self.device, self.opt = dtype, device, opt
        self.scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def __call__(self, loss: Tensor, before_step: Callable[[], None] | None = None) -> None:
        self.zero_grad()
        self.backward(loss)
        self.step(before_step)

    def zero_grad(self) -> None:
        self.opt.zero_grad(set_to_none=True)

    def backward(self, loss: Tensor) -> None:
        """Add the gradient of `loss` (scaled under fp16) to the parameters' `.grad`."""
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def step(self, before_step: Callable[[], None] | None = None) -> None:
        """The hook on the true (unscaled) gradients, then the optimiser step."""
        if self.scaler is None:
            if before_step is not None:
                before_step()
            self.opt.step()
            return
        self.scaler.unscale_(self.opt)  # hooks (gradient masks) see the true gradients
        if before_step is not None:
            before_step()
        self.scaler.step(self.opt)
        self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


class CompileClock:
    """`with CompileClock(on) as clock:` counts the compilations torch.compile makes inside (Dynamo's graphs and
    the backward graphs it compiles lazily on first use) and their wall seconds, from Dynamo's compile callbacks,
    so that RTE can leave them out: a recompilation (a short last batch, eval mode, a copied model) costs
    seconds to minutes, once, and says nothing about the method. Off (`on` false) it imports nothing."""

    def __init__(self, on: bool):
        self.on, self.seconds, self.count, self._start = on, 0.0, 0, None

    def __enter__(self) -> "CompileClock":
        if self.on:
            from torch._dynamo.callback import callback_handler  # Dynamo's own hooks (torch >= 2.5)
            callback_handler.register_start_callback(self._started)
            callback_handler.register_end_callback(self._ended)
        return self

    def __exit__(self, *exc) -> None:
        if self.on:
            from torch._dynamo.callback import callback_handler
            callback_handler.remove_start_callback(self._started)
            callback_handler.remove_end_callback(self._ended)

    def _started(self, args=None) -> None:  # the handler calls these for the outermost compilation only
        self._start = time.perf_counter()

    def _ended(self, args=None) -> None:
        if self._start is not None:
            self.seconds += time.perf_counter() - self._start
            self.count, self._start = self.count + 1, None


def micro_slices(n: int, accumulate: int) -> list[slice]:
    """`accumulate` consecutive slices covering rows 0..n-1, equal when `accumulate` divides n (as the recipe
    requires of full batches); a short last batch gets sizes differing by one, and never an empty slice."""
    edges = [round(i * n / accumulate) for i in range(accumulate + 1)]
    return [slice(a, b) for a, b in zip(edges, edges[1:]) if b > a]


class Lookahead:
    """Weight averaging of the fast-training recipes (airbench's lookahead): every `every` steps the running
    average moves towards the weights by 1 - decay and the weights are set to it, with decay 0.95^5 * (t/T)^3
    rising from 0 (no averaging early) towards 0.77 at the end; the last update returns the average itself.
    Floating-point state (weights and BatchNorm statistics) only; its own state resumes with the run."""

    def __init__(self, model: nn.Module, total: int, every: int = 5):
        self.model, self.total, self.every, self.avg = model, total, every, {}

    @torch.no_grad()
    def step(self, step: int) -> None:
        if step % self.every and step < self.total:
            return
        decay = 0.95 ** 5 * (step / self.total) ** 3 if step < self.total else 1.0
        state = self.model.state_dict()
        if not self.avg:  # taken at the first update, after any data-dependent init (decay is ~0 there)
            self.avg = {k: v.detach().clone() for k, v in state.items() if v.is_floating_point()}
        for k, avg in self.avg.items():
            avg.lerp_(state[k], 1 - decay)
            state[k].copy_(avg)

    def state_dict(self) -> dict:
        return self.avg

    def load_state_dict(self, avg: dict) -> None:
        self.avg = {k: v.clone() for k, v in avg.items()}


def accumulated_step(stepper: Stepper, n: int, accumulate: int, loss_of: Callable[[slice], Tensor],
                     check: Callable[[Tensor], None], before_step: Callable[[], None] | None = None) -> Tensor:
    """One optimiser step on a batch of `n` rows whose mean loss is `loss_of(rows)`; returns it, detached.

    With `accumulate` > 1 the batch runs as that many micro-batches, one forward and backward each, every loss
    weighted by its share of the rows, so the summed gradient is the whole batch's for any loss that is a mean
    over its rows plus terms that do not depend on them (an l1 penalty): the paper's batch in 1/accumulate of
    its activation memory. What is computed per batch instead of per row is then per micro-batch: BatchNorm's
    batch statistics (and the running statistics updated from them), and UGradSL's adaptive smooth rate
    counted within the paired micro-batch. `check` sees the batch's loss before the step.
    """
    if accumulate == 1:  # the plain loop, op for op
        with stepper.autocast():
            loss = loss_of(slice(None))
        check(loss)  # before the step: a diverged loss never reaches the weights
        stepper(loss, before_step)
        return loss.detach()
    stepper.zero_grad()
    total = None
    for rows in micro_slices(n, accumulate):
        with stepper.autocast():
            part = loss_of(rows) * ((rows.stop - rows.start) / n)
        stepper.backward(part)
        total = part.detach() if total is None else total + part.detach()
    check(total)
    stepper.step(before_step)
    return total
