"""GPU bench (issue 11): baseline vs decoupled training steps of a ~1B-parameter Llama-style model.

    python bench/bench_gpu.py                       # ~1.1B model built from a config (TinyLlama-1.1B's shape), bf16
    python bench/bench_gpu.py --model /models/gemma-3-1b-pt          # a real model's weights instead
    python bench/bench_gpu.py --lora-rank 16 --grad-checkpointing    # memory with LoRA / activation checkpointing
    python bench/bench_gpu.py --smoke               # a tiny model on the CPU in seconds (what the tests run)

Self-contained: random token batches (the second half of each sequence is the "target" the loss covers, the two
halves carry two variety labels, so the probe has something to fit), no data or experiment folder. Each mode runs
``--warmup`` untimed steps, then ``--steps`` timed ones, the way the training loop does (``training.loop``): bf16
autocast on CUDA, fused AdamW, the target-only loss (``lm_loss``); the decoupled mode adds the ``Decoupler``'s
capture hook and penalty λ·mean‖Uᵀh‖ at the middle layer (``method.decoupler``, ``method.hooks``), and one probe
refit is timed on its own.

Reported, each with the card and software versions beside it: tokens/s (median step), peak GPU memory
(``torch.cuda.max_memory_allocated``; on the CPU, the process's peak resident memory), model FLOPs utilisation
MFU = 6 · N · tokens / step time / peak FLOPs (N = parameters in the matmuls of the decoder and head, the usual
approximation that ignores attention's T² term), and the decoupling overhead (decoupled / baseline step time; and
with one refit every ``--probe-every`` steps amortised). Peak FLOPs: ``--peak-tflops`` if given, else the card's
dense bf16 tensor-core figure from its vendor's data sheet, looked up by the name CUDA reports (``PEAK_BF16_TFLOPS``);
unknown cards and the CPU get no MFU.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from explorer.config import RunConfig, derive
from explorer.data.varieties import ENG, HR
from explorer.method.decoupler import Decoupler, DecoupleSettings
from explorer.model.adapt import Adaptation, adapt, trainable_share
from explorer.model.loading import load_model
from explorer.model.sites import default_sites, hidden_size, n_layers
from explorer.training.loop import lm_loss

# Dense (no sparsity) bf16 tensor-core peak, TFLOP/s, from the vendors' data sheets; matched on the CUDA device name.
# (The sheets quote twice these figures "with sparsity".) Any other card: pass --peak-tflops.
PEAK_BF16_TFLOPS = {"H200": 989.0, "GH200": 989.0, "H100 SXM": 989.0, "H100 80GB HBM3": 989.0, "H100 NVL": 835.0,
                    "H100 PCIe": 756.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "B200": 2250.0}
CODES = [HR, "arz", ENG]
SIZES = {  # name: (hidden, intermediate, layers, heads, kv heads, vocab)
    "1b": (2048, 5632, 22, 32, 4, 32000),   # TinyLlama-1.1B's shape: 1.10e9 parameters
    "1b-4l": (2048, 5632, 4, 32, 4, 32000),  # the same width, 4 layers (0.33e9): what a small CPU machine can hold
    "smoke": (64, 128, 2, 4, 2, 512),
}


def versions() -> str:
    import transformers
    parts = [f"torch {torch.__version__}", f"transformers {transformers.__version__}", f"python {platform.python_version()}"]
    if torch.cuda.is_available():
        parts.insert(1, f"CUDA {torch.version.cuda}")
    return ", ".join(parts)


def card(device: torch.device) -> str:
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return f"{p.name} ({p.total_memory / 2**30:.0f} GiB)"
    return f"CPU {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def peak_tflops(device: torch.device, given: float | None) -> tuple[float | None, str]:
    if given:
        return given, "--peak-tflops"
    if device.type != "cuda":
        return None, "none for a CPU"
    name = torch.cuda.get_device_name(device)
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):   # the most specific name first
        if key in name:
            return PEAK_BF16_TFLOPS[key], f"data sheet, dense bf16 ({key})"
    return None, f"unknown card {name!r}: pass --peak-tflops"


def build(args, device: torch.device):
    """(model, tokenizer or None, vocab size) on ``device``: a local model, or a Llama-style one from a config."""
    a = Adaptation(lora_rank=args.lora_rank, lora_alpha=2.0 * max(1, args.lora_rank),
                   grad_checkpointing=args.grad_checkpointing, bf16=device.type == "cuda")
    if args.model:
        model, tok = load_model(args.model, dtype=torch.bfloat16 if (a.lora and device.type == "cuda") else torch.float32)
        return adapt(model, a).to(device), len(tok)
    from transformers import LlamaConfig, LlamaForCausalLM
    h, inter, layers, heads, kv, vocab = SIZES[args.size]
    cfg = LlamaConfig(hidden_size=h, intermediate_size=inter, num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=kv, vocab_size=vocab, max_position_embeddings=max(2048, args.seq_len),
                      tie_word_embeddings=False)
    # fp32 master weights for full training; a frozen LoRA base in bf16 on CUDA (explorer.model.adapt)
    dtype = torch.bfloat16 if (a.lora and device.type == "cuda") else torch.float32
    with torch.device(device):
        torch.manual_seed(0)
        model = LlamaForCausalLM(cfg).to(dtype)
    return adapt(model, a), vocab


def matmul_params(model) -> int:
    """Parameters that take part in matmuls (every weight except the input embedding's lookup)."""
    emb = model.get_input_embeddings().weight
    return sum(p.numel() for p in model.parameters() if p is not emb)


def make_batch(vocab: int, batch: int, seq: int, device, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, vocab, (batch, seq), generator=g)
    labels = ids.clone()
    labels[:, : seq // 2] = -100
    variety = torch.zeros(batch, seq, dtype=torch.long)
    variety[:, seq // 2:] = 1                                   # source "MSA" (0), target "Egyptian" (1)
    variety[batch // 2:, : seq // 2], variety[batch // 2:, seq // 2:] = 1, 0
    out = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels, "variety": variety}
    return {k: v.to(device) for k, v in out.items()}


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_mode(model, mode: str, args, vocab: int, device) -> dict:
    """Time ``args.steps`` optimiser steps (after ``args.warmup``) in ``mode`` (baseline | decoupled)."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, fused=device.type == "cuda")
    decoupler = None
    if mode == "decoupled":
        rc = RunConfig(lam=0.01, probe_tokens=args.probe_tokens, probe_steps=args.probe_steps, probe_every=10**9,
                       gate=0.0)   # random data: the probe is at chance, but the penalty must run to be timed
        s = derive(DecoupleSettings, rc, arm="decoupled", kind="probe", sites=default_sites(model))
        probe = [make_batch(vocab, args.batch, args.seq_len, "cpu", 1000 + i) for i in range(2)]
        decoupler = Decoupler(s, hidden_size(model), CODES, lambda step: probe)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if device.type == "cuda" else \
        torch.autocast("cpu", enabled=False)
    refit_s = None
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model.train()
    times = []
    for step in range(args.warmup + args.steps):
        batch = make_batch(vocab, args.batch, args.seq_len, device, step)
        if decoupler is not None and decoupler.due(step):
            sync(device)
            t0 = time.perf_counter()
            decoupler.refit(model, step, autocast)
            sync(device)
            refit_s = time.perf_counter() - t0
        sync(device)
        t0 = time.perf_counter()
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
        if decoupler is not None:
            with decoupler.context(model) as states, autocast:
                loss = lm_loss(model, inputs)
            loss = loss + decoupler.loss_term(states, batch).weighted
        else:
            with autocast:
                loss = lm_loss(model, inputs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sync(device)
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    del opt
    return {"step_s": step_s, "tokens_per_s": args.batch * args.seq_len / step_s, "peak_bytes": peak,
            "refit_s": refit_s, "loss": float(loss.detach())}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="", help="a local causal LM folder (default: a Llama-style model from a config)")
    ap.add_argument("--size", default="1b", choices=sorted(SIZES))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--probe-tokens", type=int, default=20000)
    ap.add_argument("--probe-steps", type=int, default=300)
    ap.add_argument("--probe-every", type=int, default=500, help="refit interval for the amortised overhead")
    ap.add_argument("--lora-rank", type=int, default=0)
    ap.add_argument("--grad-checkpointing", action="store_true")
    ap.add_argument("--modes", default="baseline,decoupled")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the card's peak (default: looked up by name)")
    ap.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    ap.add_argument("--smoke", action="store_true", help="tiny model, CPU, 2+1 steps: checks that the bench runs")
    ap.add_argument("--json", default="", help="also write the figures to this file")
    args = ap.parse_args(argv)
    if args.smoke:
        args.size, args.batch, args.seq_len, args.steps, args.warmup = "smoke", 4, 32, 2, 1
        args.probe_tokens, args.probe_steps, args.cpu, args.model = 200, 10, True, ""
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    t0 = time.perf_counter()
    model, vocab = build(args, device)
    trainable, total = trainable_share(model)
    n_mm = matmul_params(model)
    peak, peak_src = peak_tflops(device, args.peak_tflops)
    ctx = {"card": card(device), "software": versions()}
    out = {"context": ctx, "model": args.model or f"Llama-style {args.size} from a config", "params": total,
           "trainable": trainable, "matmul_params": n_mm, "layers": n_layers(model), "batch": args.batch,
           "seq_len": args.seq_len, "lora_rank": args.lora_rank, "grad_checkpointing": args.grad_checkpointing,
           "peak_tflops": peak, "peak_tflops_source": peak_src, "build_s": round(time.perf_counter() - t0, 1),
           "modes": {}}
    for mode in args.modes.split(","):
        r = run_mode(model, mode, args, vocab, device)
        # 6·N per token for forward + backward; with LoRA the frozen weights still cost forward + input-gradient
        # matmuls (4·N) and only the adapters add weight gradients: the usual 6·N then overstates the work done
        flops = 6 * n_mm * args.batch * args.seq_len
        r["mfu"] = flops / r["step_s"] / (peak * 1e12) if peak else None
        out["modes"][mode] = r
    if {"baseline", "decoupled"} <= set(out["modes"]):
        b, d = out["modes"]["baseline"], out["modes"]["decoupled"]
        out["overhead_per_step"] = d["step_s"] / b["step_s"]
        if d["refit_s"] is not None:
            out["overhead_amortised"] = (d["step_s"] * args.probe_every + d["refit_s"]) / (b["step_s"] * args.probe_every)
    print(table(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


def table(out: dict) -> str:
    ctx = f"{out['context']['card']}; {out['context']['software']}"
    mem = "peak GPU memory" if "GiB" in out["context"]["card"] else "peak resident memory (process)"
    described = (f"{out['model']}: {out['params']:,} parameters ({out['params']:.2e}), {out['trainable']:,} "
                 f"trainable (LoRA rank {out['lora_rank']}), activation checkpointing "
                 f"{'on' if out['grad_checkpointing'] else 'off'}")
    rows = [("model", described),
            ("batch", f"{out['batch']} x {out['seq_len']} tokens"),
            ("peak FLOPs", f"{out['peak_tflops'] or 'n/a'} TFLOP/s ({out['peak_tflops_source']})")]
    for mode, r in out["modes"].items():
        rows.append((f"{mode}: step (median)", f"{r['step_s'] * 1000:.1f} ms"))
        rows.append((f"{mode}: tokens/s", f"{r['tokens_per_s']:,.0f}"))
        rows.append((f"{mode}: {mem}", f"{r['peak_bytes'] / 2**30:.2f} GiB"))
        rows.append((f"{mode}: MFU", f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a (no peak FLOPs)"))
        if r["refit_s"] is not None:
            rows.append((f"{mode}: one probe refit", f"{r['refit_s']:.2f} s"))
    if "overhead_per_step" in out:
        rows.append(("decoupled / baseline, per step", f"{out['overhead_per_step']:.3f}"))
    if "overhead_amortised" in out:
        rows.append(("decoupled / baseline, one refit per --probe-every steps", f"{out['overhead_amortised']:.3f}"))
    lines = ["| figure | value | card; software |", "| --- | --- | --- |"]
    lines += [f"| {k} | {v} | {ctx} |" for k, v in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
