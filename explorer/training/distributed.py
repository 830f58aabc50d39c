"""Multi-process (DDP) training through Hugging Face Accelerate (docs/design.md §4).

Launch the same command under a launcher and it trains data-parallel:

    accelerate launch --num_processes 4 -m explorer run --preset full        # 4 GPUs
    torchrun --nproc_per_node 2 -m explorer run --preset tiny                # 2 CPU processes (gloo)

Every rank builds the same batch schedule and takes its share of each batch (``rank::world``), so
a step sees the same global batch as a one-process run. The probe is refitted on rank 0 only and
its basis U is broadcast, so every rank penalises the same subspace. Rank 0 alone writes files
(logs, checkpoints, resume state, refits, evaluation, representations); the other ranks wait at
a barrier after each stage. Without a launcher (``WORLD_SIZE`` unset or 1) nothing here does
anything and no process group is created.

A worker stops when its launcher dies (``_stop_with_launcher``): torchrun starts each worker in a session of its
own, so a SIGKILL to the launcher's process group (a scheduler's kill, the OOM killer, ``kill -9 -PGID``) would
otherwise leave the workers training on, unsupervised, into the experiment folder. Stopped the same way, the
run resumes from its last resume state when the same command is run again (tested with two CPU processes).
"""

from __future__ import annotations

import os
import signal
import threading
import time

import torch


class Dist:
    """This process's place in the run: rank, number of processes, device; no-ops when alone."""

    def __init__(self, accelerator=None):
        self.acc = accelerator
        self.rank = accelerator.process_index if accelerator else 0
        self.world = accelerator.num_processes if accelerator else 1
        self.device = accelerator.device if accelerator else None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.active:
            self.acc.wait_for_everyone()

    def prepare(self, model, optimizer):
        """(DDP-wrapped model for the forward/backward, optimizer); the unwrapped model stays usable for
        hooks and saving (it shares its parameters)."""
        if not self.active:
            return model, optimizer
        return self.acc.prepare(model, optimizer)

    def backward(self, loss: torch.Tensor) -> None:
        if self.active:
            self.acc.backward(loss)
        else:
            loss.backward()

    def shard(self, indices):
        """This rank's share of one global batch."""
        return indices[self.rank::self.world] if self.active else indices

    def broadcast_matrix(self, matrix: torch.Tensor | None) -> torch.Tensor:
        """Rank 0's float32 matrix on every rank (its shape first, since a rank-k fit may stop early)."""
        if not self.active:
            assert matrix is not None
            return matrix
        import torch.distributed as td

        dev = self.device if td.get_backend() == "nccl" else torch.device("cpu")
        shape = torch.tensor(list(matrix.shape) if self.is_main else [0, 0], dtype=torch.long, device=dev)
        td.broadcast(shape, 0)
        buf = (matrix.to(device=dev, dtype=torch.float32).contiguous() if self.is_main
               else torch.empty(tuple(shape.tolist()), dtype=torch.float32, device=dev))
        td.broadcast(buf, 0)
        return buf.cpu()


_CURRENT = Dist()


def current() -> Dist:
    return _CURRENT


def setup() -> Dist:
    """Join the launcher's process group through Accelerate when started by one (WORLD_SIZE > 1)."""
    global _CURRENT
    if _CURRENT.active or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return _CURRENT
    from accelerate import Accelerator

    _stop_with_launcher()
    _CURRENT = Dist(Accelerator(cpu=not torch.cuda.is_available()))
    return _CURRENT


def _stop_with_launcher(poll_s: float = 0.5) -> None:
    """Kill this worker (SIGKILL, like its launcher) once its parent, the launcher, is gone (it is then re-parented,
    and ``getppid`` changes). A daemon thread that wakes twice a second; it costs nothing measurable."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="stop-with-launcher", daemon=True).start()
