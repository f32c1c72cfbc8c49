#!/usr/bin/env python3
"""PyTorch peer for `bitbyte bench train`: training throughput of BitByteLM.

`bitbyte bench train` (C++, LibTorch) trains a small byte-level GPT and reports
bytes/s; this script trains exactly the same model, with the same optimizer, the
same learning-rate schedule and the same data sampling, in Python PyTorch, so the
two can be compared in the same run on the same machine.  Run it with Debian's
interpreter (python3-torch), e.g.

    /usr/bin/python3 scripts/bench_train.py --data train.bin --steps 30 --json

Model (nanoGPT style, float32, no dropout):
  tok_emb Embedding(256, d) + pos_emb Embedding(context, d) (learned positions);
  n_layer pre-norm blocks  x = x + attn(ln1(x)); x = x + mlp(ln2(x))  with
  LayerNorm(d, eps=1e-5), fused qkv Linear(d, 3d) + causal softmax attention +
  proj Linear(d, d), mlp Linear(d, d_ff) -> GELU (erf) -> Linear(d_ff, d);
  ln_f, then head Linear(d, 256, bias=False), not tied to tok_emb.
  Init: Linear/Embedding weights N(0, 0.02), the two residual output
  projections N(0, 0.02/sqrt(2*n_layer)), biases 0, LayerNorm weight 1 bias 0.

Training step: cross-entropy (mean over B*T), zero_grad(set_to_none=True),
backward, clip_grad_norm_(1.0), AdamW(betas=(0.9, 0.95), eps=1e-8) with weight
decay on the 2-D weights of nn.Linear modules only.  The optimizer runs with the
installed torch's default implementation (nothing is forced); which one that
resolves to is reported ("adamw").

Learning rate, with W = --warmup-steps, S = --steps and global step s counted
from 0 over all W + S steps (warmup steps first):
  s <  W:  lr * (s + 1) / W
  s >= W:  min_lr + 0.5 * (1 + cos(pi * r)) * (lr - min_lr),
           r = (s - W) / max(1, S - 1),  min_lr = 0.1 * lr
so the timed steps run the whole cosine from lr down to min_lr.

Data: --data FILE is read once as raw bytes.  Each step draws --batch offsets
uniformly from [0, len - seq - 1] with a torch.Generator seeded by --seed
(torch.randint(0, len - seq, (batch,))), takes windows of seq + 1 bytes,
x = window[:-1], y = window[1:] (int64).  Without --data the "file" is 16 MiB of
random bytes drawn from the same generator first.

Precision: --precision bf16 runs the forward pass (and so the loss) under
torch.autocast("cpu", dtype=torch.bfloat16), the documented way to train in
bf16 on a CPU: weights, gradients and optimizer state stay float32.

Timing: the warmup steps run first, untimed; then --steps steps are timed with
time.perf_counter() (data sampling included).  bytes_per_s = steps * batch * seq
/ seconds; median_step_s is the median of the per-step times.  loss_first is
the loss of the first step run (a warmup step if there are any), loss_last that
of the last timed step.  --json prints exactly one JSON line.
"""

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 256
RANDOM_DATA_BYTES = 16 << 20


def torch_major() -> int:
    try:
        return int(torch.__version__.split(".")[0])
    except ValueError:
        return 0


# torch 1.13 has no fused attention; from 2.0 on use it (same maths, causal).
USE_SDPA = torch_major() >= 2 and hasattr(F, "scaled_dot_product_attention")


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_head: int, context: int):
        super().__init__()
        assert d_model % n_head == 0, "d_model must be divisible by n_head"
        self.n_head = n_head
        self.head_dim = d_model // n_head
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=True)
        self.proj = nn.Linear(d_model, d_model, bias=True)
        # True above the diagonal: the future positions each query may not see.
        mask = torch.triu(torch.ones(context, context, dtype=torch.bool), diagonal=1)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        # (B, T, d) -> (B, n_head, T, head_dim)
        q = q.view(b, t, self.n_head, self.head_dim).transpose(1, 2)
        k = k.view(b, t, self.n_head, self.head_dim).transpose(1, 2)
        v = v.view(b, t, self.n_head, self.head_dim).transpose(1, 2)
        if USE_SDPA:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * self.scale
            att = att.masked_fill(self.mask[:t, :t], float("-inf"))
            att = F.softmax(att, dim=-1)
            y = att @ v
        y = y.transpose(1, 2).contiguous().view(b, t, d)  # merge heads
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.fc = nn.Linear(d_model, d_ff, bias=True)
        self.act = nn.GELU()  # exact (erf) GELU
        self.proj = nn.Linear(d_ff, d_model, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.act(self.fc(x)))


class Block(nn.Module):
    def __init__(self, d_model: int, n_head: int, d_ff: int, context: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model, eps=1e-5)
        self.attn = CausalSelfAttention(d_model, n_head, context)
        self.ln2 = nn.LayerNorm(d_model, eps=1e-5)
        self.mlp = MLP(d_model, d_ff)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        x = x + self.mlp(self.ln2(x))
        return x


class BitByteLM(nn.Module):
    def __init__(self, d_model: int, n_layer: int, n_head: int, d_ff: int, context: int):
        super().__init__()
        self.context = context
        self.tok_emb = nn.Embedding(VOCAB, d_model)
        self.pos_emb = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(
            [Block(d_model, n_head, d_ff, context) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(d_model, eps=1e-5)
        self.head = nn.Linear(d_model, VOCAB, bias=False)
        self._init_weights(n_layer)

    def _init_weights(self, n_layer: int) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Scaled init of the two projections that write into the residual stream.
        residual_std = 0.02 / math.sqrt(2 * n_layer)
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, mean=0.0, std=residual_std)
            nn.init.normal_(block.mlp.proj.weight, mean=0.0, std=residual_std)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _, t = idx.shape
        assert t <= self.context, "sequence longer than the context"
        pos = torch.arange(t, dtype=torch.long)
        x = self.tok_emb(idx) + self.pos_emb(pos)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, VOCAB), targets.view(-1))


def param_groups(model: nn.Module, weight_decay: float):
    """Weight decay on the 2-D weights of nn.Linear modules, none elsewhere."""
    decay_ids = {id(m.weight) for m in model.modules()
                 if isinstance(m, nn.Linear) and m.weight.dim() == 2}
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if id(p) in decay_ids else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def adamw_impl(optimizer: torch.optim.Optimizer) -> str:
    """Which AdamW implementation the installed torch uses with its defaults."""
    group = optimizer.param_groups[0]
    foreach, fused = group.get("foreach"), group.get("fused")
    if fused:
        return "fused"
    if foreach is not None:
        return "foreach" if foreach else "single_tensor"
    # foreach=None: torch chooses.  torch >= 2 decides per device
    # (_default_to_fused_or_foreach; foreach on CUDA, single-tensor on CPU);
    # torch 1.13's adamw() turns None into False, i.e. single-tensor.
    try:
        from torch.optim.optimizer import _default_to_fused_or_foreach
        params = [p for g in optimizer.param_groups for p in g["params"]]
        try:
            use_fused, use_foreach = _default_to_fused_or_foreach(params, False, False)
        except TypeError:
            use_fused, use_foreach = False, _default_to_fused_or_foreach(params, False)
        if use_fused:
            return "fused (default)"
        return "foreach (default)" if use_foreach else "single_tensor (default)"
    except ImportError:
        return "single_tensor (default, foreach=None)"


def learning_rate(step: int, base_lr: float, warmup: int, steps: int) -> float:
    """Linear warmup over the first `warmup` steps, then cosine to 0.1 * base_lr."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    min_lr = 0.1 * base_lr
    ratio = min(1.0, (step - warmup) / max(1, steps - 1))
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (base_lr - min_lr)


def load_data(path, gen: torch.Generator) -> torch.Tensor:
    """The training bytes as one uint8 tensor."""
    if path is None:
        return torch.randint(0, VOCAB, (RANDOM_DATA_BYTES,), dtype=torch.uint8, generator=gen)
    with open(path, "rb") as f:
        raw = bytearray(f.read())  # writable, so frombuffer does not warn
    return torch.frombuffer(raw, dtype=torch.uint8)


class Sampler:
    """Random windows of seq + 1 bytes: x = window[:-1], y = window[1:]."""

    def __init__(self, data: torch.Tensor, batch: int, seq: int, gen: torch.Generator):
        if data.numel() < seq + 1:
            raise SystemExit(f"data has {data.numel()} bytes, need at least seq + 1 = {seq + 1}")
        self.data, self.batch, self.seq, self.gen = data, batch, seq, gen
        self.window = torch.arange(seq + 1, dtype=torch.long)

    def next(self):
        # Offsets uniform in [0, len - seq - 1] (randint's high is exclusive).
        offsets = torch.randint(0, self.data.numel() - self.seq, (self.batch,),
                                generator=self.gen, dtype=torch.long)
        chunk = self.data[offsets[:, None] + self.window].long()  # (B, seq + 1)
        return chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous()


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--d-ff", type=int, default=0, help="MLP width (0: 4 * d_model)")
    p.add_argument("--seq", type=int, default=256, help="training sequence length")
    p.add_argument("--context", type=int, default=0, help="position table size (0: --seq)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=30, help="timed steps")
    p.add_argument("--warmup-steps", type=int, default=5,
                   help="untimed steps run first (also the lr warmup)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data", default=None, help="raw byte file (training split)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: forward under torch.autocast('cpu', torch.bfloat16), the way a "
                        "PyTorch user trains in bf16 on a CPU (fp32 weights and optimizer)")
    p.add_argument("--gemm-peak", type=int, default=0, metavar="N",
                   help="only measure N x N x N matmul GFLOPS in fp32 and bf16 (best of 5 "
                        "each, --threads threads) and print them as one JSON line")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    args = p.parse_args(argv)
    if args.d_ff <= 0:
        args.d_ff = 4 * args.d_model
    if args.context <= 0:
        args.context = args.seq
    if args.seq > args.context:
        p.error("--seq must not exceed --context")
    if args.steps < 1 or args.warmup_steps < 0 or args.threads < 1:
        p.error("need --steps >= 1, --warmup-steps >= 0, --threads >= 1")
    return args


def gemm_peak(n: int) -> dict:
    """Best-of-5 GFLOPS of an n^3 matmul in fp32 and in bf16 (2 n^3 FLOPs each)."""
    out = {"gemm_n": n, "threads": torch.get_num_threads(),
           "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "")}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(n, n).to(dtype)
        b = torch.randn(n, n).to(dtype)
        torch.mm(a, b)  # warm: thread pool, kernel set-up
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
        out[name + "_gflops"] = 2.0 * n ** 3 / best / 1e9
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    # Before any parallel work: interop threads can only be set once.
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    if args.gemm_peak > 0:
        print(json.dumps(gemm_peak(args.gemm_peak)))
        return 0
    torch.manual_seed(args.seed)  # model init

    gen = torch.Generator().manual_seed(args.seed)  # data
    sampler = Sampler(load_data(args.data, gen), args.batch, args.seq, gen)

    model = BitByteLM(args.d_model, args.n_layer, args.n_head, args.d_ff, args.context)
    model.train()
    params = [p for p in model.parameters()]
    n_params = sum(p.numel() for p in params)
    optimizer = torch.optim.AdamW(param_groups(model, args.weight_decay),
                                  lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    impl = adamw_impl(optimizer)

    def train_step(step: int) -> float:
        lr = learning_rate(step, args.lr, args.warmup_steps, args.steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = sampler.next()
        if args.precision == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model(x, y)
        else:
            loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        return loss.item()

    losses = []
    for step in range(args.warmup_steps):  # untimed
        losses.append(train_step(step))

    step_times = []
    start = time.perf_counter()
    for i in range(args.steps):
        t0 = time.perf_counter()
        losses.append(train_step(args.warmup_steps + i))
        step_times.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start

    trained_bytes = args.steps * args.batch * args.seq
    result = {
        "impl": "python",
        "torch": torch.__version__,
        "threads": args.threads,
        "precision": args.precision,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
        "params": n_params,
        "steps": args.steps,
        "batch": args.batch,
        "seq": args.seq,
        "seconds": elapsed,
        "bytes_per_s": trained_bytes / elapsed,
        "median_step_s": statistics.median(step_times),
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # Not compared, recorded for the reader.
        "adamw": impl,
        "attention": "sdpa" if USE_SDPA else "matmul-softmax",
        "d_model": args.d_model,
        "n_layer": args.n_layer,
        "n_head": args.n_head,
        "d_ff": args.d_ff,
        "context": args.context,
        "warmup_steps": args.warmup_steps,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"BitByteLM (python, torch {torch.__version__}, {args.threads} threads, "
              f"{args.precision}): "
              f"d_model {args.d_model}, {args.n_layer} layers, {args.n_head} heads, "
              f"d_ff {args.d_ff}, context {args.context}")
        print(f"  parameters   {n_params}")
        print(f"  AdamW        {impl}; attention {result['attention']}")
        print(f"  data         {args.data or 'random bytes'}, batch {args.batch} x seq {args.seq}")
        print(f"  steps        {args.steps} timed after {args.warmup_steps} warmup")
        print(f"  time         {elapsed:.3f} s, median step {result['median_step_s'] * 1e3:.1f} ms")
        print(f"  throughput   {result['bytes_per_s']:.0f} bytes/s")
        print(f"  loss         {losses[0]:.4f} -> {losses[-1]:.4f}")
        print(f"  peak RSS     {result['peak_rss_mib']:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
