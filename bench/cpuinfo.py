"""The processor a benchmark ran on, printed beside every figure: model name and the flags that decide speed
(avx2, avx512f, avx512_bf16, amx_bf16), torch's CPU capability and thread count."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_info() -> dict:
    name = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name in ("", platform.machine()):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        capability = "unknown"
    return {"cpu": name, "flags": {f: f in flags for f in FLAGS}, "torch_capability": capability,
            "torch_threads": torch.get_num_threads(), "cores": len(__import__("os").sched_getaffinity(0))}


def cpu_line(info: dict | None = None) -> str:
    info = info or cpu_info()
    have = ", ".join(f"{f} {'yes' if v else 'no'}" for f, v in info["flags"].items())
    return (f"{info['cpu']}, {info['cores']} cores, torch {info['torch_threads']} threads, "
            f"capability {info['torch_capability']}; {have}")


if __name__ == "__main__":
    print(cpu_line())
