"""The resume state of an unfinished stage: everything needed to continue training, in one folder.

The folder (given by the experiment layout) holds ``model.safetensors`` (fp32 weights), ``optim.safetensors``
(optimiser tensors), ``extra.safetensors`` (e.g. the decoupler's subspaces and probe warm start) and
``state.json`` (step, optimiser groups, extra metadata). It is replaced atomically (new → swap → drop old).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from ..files import load_tensors, read_json, save_tensors, write_json
from ..model.weights import load_weights, weight_tensors


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for name, v in st.items():
            tensors[f"{idx}.{name}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return tensors, sd["param_groups"]


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]) -> None:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": groups})


class ResumeState:
    """A folder holding everything needed to continue training, replaced atomically (new → swap → drop old)."""

    def __init__(self, root: Path):
        self.root = root
        self.new = root.with_name(root.name + ".new")
        self.old = root.with_name(root.name + ".old")

    def _complete(self, d: Path) -> bool:
        return (d / "state.json").exists()

    def location(self) -> Path | None:
        for d in (self.root, self.old):
            if d.exists() and self._complete(d):
                return d
        return None

    def save(self, model, opt, step: int, extra_tensors: dict[str, torch.Tensor], extra: dict) -> None:
        shutil.rmtree(self.new, ignore_errors=True)
        save_tensors(self.new / "model.safetensors", weight_tensors(model))
        opt_t, groups = _optimizer_tensors(opt)
        save_tensors(self.new / "optim.safetensors", opt_t)
        if extra_tensors:
            save_tensors(self.new / "extra.safetensors", extra_tensors)
        write_json(self.new / "state.json", {"step": step, "param_groups": groups, "extra": extra})
        if self.root.exists():
            shutil.rmtree(self.old, ignore_errors=True)
            self.root.rename(self.old)
        self.new.rename(self.root)
        shutil.rmtree(self.old, ignore_errors=True)

    def load(self, model, opt) -> tuple[int, dict[str, torch.Tensor], dict]:
        d = self.location()
        assert d is not None
        meta = read_json(d / "state.json")
        load_weights(model, load_tensors(d / "model.safetensors"))
        _load_optimizer(opt, load_tensors(d / "optim.safetensors"), meta["param_groups"])
        extra_t = load_tensors(d / "extra.safetensors") if (d / "extra.safetensors").exists() else {}
        return int(meta["step"]), extra_t, meta["extra"]

    def drop(self) -> None:
        for d in (self.root, self.new, self.old):
            shutil.rmtree(d, ignore_errors=True)
