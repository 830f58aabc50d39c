"""The processor a benchmark ran on, printed beside every figure: model name and the flags that decide speed
(avx2, avx512f, avx512_bf16, amx_bf16), torch's CPU capability and thread count."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from explorer.training.precision import cpu_flags, cpu_model  # noqa: E402

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_info() -> dict:
    flags = cpu_flags()
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        capability = "unknown"
    return {"cpu": cpu_model(), "flags": {f: f in flags for f in FLAGS}, "torch_capability": capability,
            "torch_threads": torch.get_num_threads(), "cores": len(os.sched_getaffinity(0))}


def cpu_line(info: dict | None = None) -> str:
    info = info or cpu_info()
    have = ", ".join(f"{f} {'yes' if v else 'no'}" for f, v in info["flags"].items())
    return (f"{info['cpu']}, {info['cores']} cores, torch {info['torch_threads']} threads, "
            f"capability {info['torch_capability']}; {have}")


if __name__ == "__main__":
    print(cpu_line())
