"""bench/bench_gpu.py runs (its --smoke mode: a tiny Llama-style model on the CPU, a few seconds) and reports what it
promises: tokens/s, memory, MFU where a peak is known, the decoupling overhead, with card and versions on each row."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench_gpu.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_smoke_mode_measures_both_modes_with_context_on_every_row(bench, tmp_path, capsys):
    out = bench.main(["--smoke", "--peak-tflops", "1.0", "--json", str(tmp_path / "b.json")])
    assert set(out["modes"]) == {"baseline", "decoupled"}
    for r in out["modes"].values():
        assert r["step_s"] > 0 and r["tokens_per_s"] == pytest.approx(4 * 32 / r["step_s"])
        assert r["peak_bytes"] > 0 and 0 < r["mfu"] < 1
    assert out["modes"]["decoupled"]["refit_s"] > 0 and out["overhead_per_step"] > 0
    assert out["matmul_params"] < out["params"] and out["layers"] == 2
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| ") and not line.startswith(("| figure", "| ---"))]
    assert len(rows) >= 12 and all("torch " in line and "transformers " in line and "CPU" in line for line in rows)
    assert (tmp_path / "b.json").exists()


def test_peak_flops_are_looked_up_by_card_name(bench, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert bench.peak_tflops(torch.device("cuda"), None) == (989.0, "data sheet, dense bf16 (H100 80GB HBM3)")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 PCIe")
    assert bench.peak_tflops(torch.device("cuda"), None)[0] == 756.0
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some Future Card")
    assert bench.peak_tflops(torch.device("cuda"), None)[0] is None
    assert bench.peak_tflops(torch.device("cpu"), 2.5) == (2.5, "--peak-tflops")
