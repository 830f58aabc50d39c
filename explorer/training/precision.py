"""Which precision a run trains in: bf16 autocast only where it is measured faster than fp32 (docs/design.md,
"Precision").

On a GPU with bf16 support, bf16 autocast is the usual choice. On a CPU it depends on the processor: with native
bf16 instructions (AVX512-BF16 or AMX) autocast is faster than fp32, without them torch falls back to a generic path
(``bf16_dot_with_fp32_arith``) that made a `default` training step about 10× slower on a 2-core AVX2 CPU. So
``--bf16 auto`` (the default) asks the processor what it has and, where it has native bf16, measures a matrix
product of the built-in model's shape both ways (a fraction of a second) and keeps bf16 only if it wins.
``--bf16 true|false`` forces the choice; the resolved choice and its reason are printed at the start of a run and
recorded in the experiment's manifest.
"""

from __future__ import annotations

import functools
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

SETTINGS = ("auto", "true", "false")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
MIN_SPEEDUP = 1.1       # bf16 must be at least this much faster than fp32 to be chosen on a CPU


@dataclass(frozen=True)
class Precision:
    """The resolved choice: ``bf16`` autocast or not, on which device type, why, and the measurement if any."""

    bf16: bool
    device: str
    setting: str
    reason: str
    fp32_ms: float | None = None
    bf16_ms: float | None = None

    def to_dict(self) -> dict:
        return {"bf16": self.bf16, "device": self.device, "setting": self.setting, "reason": self.reason,
                "fp32_ms": self.fp32_ms, "bf16_ms": self.bf16_ms}

    def line(self) -> str:
        """One line for the start of a run."""
        return f"precision: {'bf16 autocast' if self.bf16 else 'fp32'} on {self.device} ({self.reason})"


def normalise(value: object) -> str:
    """``--bf16`` as stored: "auto", "true" or "false" (older manifests hold a bool)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip().lower()
    aliases = {"1": "true", "yes": "true", "on": "true", "0": "false", "no": "false", "off": "false"}
    text = aliases.get(text, text)
    if text not in SETTINGS:
        raise ValueError(f"--bf16 takes auto, true or false; got {value!r}")
    return text


def _cpuinfo_field(name: str, path: str | Path = "/proc/cpuinfo") -> str | None:
    """The first ``name : value`` of /proc/cpuinfo (None where it is not there, e.g. macOS): the one reader of it."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags(path: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The processor's feature flags (empty where /proc/cpuinfo is not there)."""
    return frozenset((_cpuinfo_field("flags", path) or "").split())


def cpu_model() -> str:
    """The processor's model name, as /proc/cpuinfo gives it (else what the platform module knows)."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def native_bf16(flags: frozenset[str]) -> bool:
    return any(f in flags for f in NATIVE_BF16_FLAGS)


def measure_cpu(rows: int = 2048, d_in: int = 256, d_out: int = 768, reps: int = 7) -> tuple[float, float]:
    """Median milliseconds of one forward and backward pass through a linear layer of the built-in model's shape
    (``d_model`` → ``d_ff``, a batch of ``rows`` token states), in fp32 and under bf16 autocast, interleaved."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows, d_in, generator=g)
    w = torch.randn(d_out, d_in, generator=g).requires_grad_()

    def once(bf16: bool) -> float:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = torch.nn.functional.linear(x, w)
        y.float().square().mean().backward()
        w.grad = None
        return (time.perf_counter() - t0) * 1000

    for _ in range(2):              # warm-up: first calls pick kernels
        once(False), once(True)
    fp32, bf16 = [], []
    for _ in range(reps):
        fp32.append(once(False))
        bf16.append(once(True))
    return statistics.median(fp32), statistics.median(bf16)


def resolve(setting: object, device: torch.device | str, *, flags: frozenset[str] | None = None,
            measure=measure_cpu) -> Precision:
    """The precision ``--bf16 setting`` means on ``device`` (see the module docstring). ``flags`` and ``measure``
    are for tests (a processor without native bf16, a measurement either way)."""
    setting = normalise(setting)
    kind = torch.device(device).type
    if setting == "false":
        return Precision(False, kind, setting, "--bf16 false")
    if kind == "cuda":
        ok = torch.cuda.is_bf16_supported()
        if setting == "true":
            return Precision(True, kind, setting, "--bf16 true")
        return Precision(ok, kind, setting, "this GPU supports bf16" if ok else "this GPU has no bf16 support")
    flags = cpu_flags() if flags is None else flags
    if setting == "true":
        why = "--bf16 true" if native_bf16(flags) else \
            "--bf16 true, although this CPU has no native bf16 (AVX512-BF16/AMX): expect training to be far slower"
        return Precision(True, kind, setting, why)
    if kind != "cpu":
        return Precision(False, kind, setting, f"bf16 autocast is not tried on {kind}")
    if not native_bf16(flags):
        return Precision(False, kind, setting, "this CPU has no native bf16 (AVX512-BF16/AMX), where bf16 autocast "
                         "is about 10× slower than fp32")
    fp32_ms, bf16_ms = measure()
    faster = bf16_ms * MIN_SPEEDUP <= fp32_ms
    verdict = "faster, kept" if faster else f"not {MIN_SPEEDUP}× faster, fp32 kept"
    return Precision(faster, kind, setting, f"native bf16 on this CPU; measured {bf16_ms:.2f} ms bf16 against "
                     f"{fp32_ms:.2f} ms fp32: {verdict}", round(fp32_ms, 3), round(bf16_ms, 3))


@functools.lru_cache(maxsize=8)
def resolved(setting: str, device_type: str) -> Precision:
    """``resolve`` once per process for a (setting, device type): a run's stages and the app agree."""
    return resolve(setting, device_type)


def use_bf16(setting: object, device: torch.device | str) -> bool:
    """Whether to autocast to bf16 on ``device`` under ``--bf16 setting`` (resolved once per process)."""
    return resolved(normalise(setting), torch.device(device).type).bf16
