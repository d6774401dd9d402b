"""Token pruning and coarser strides: forward time against keep_ratio, and fidelity to the unpruned model.

- AST-base shapes (random weights, one 10 s clip, 1212 patches): pruned vs unpruned forward, alternating.
- The demo model on the synthetic held-out split: ``compute_tradeoff`` (speed-up over the split, batches
  of 8, and top-1 agreement with the unpruned model; dropped patches fused into one token, the default,
  and once discarded for comparison), plus the stride-16 conversion next to AST's own
  position-embedding adaptation (centre cut) as the peer.

Target: keep_ratio 0.5 -> >= 1.8x faster with >= 95 % top-1 agreement; every way of keeping half the
patches is held to it (energy, attention, energy without the fused token).
"""

from __future__ import annotations

import torch

from .common import alternating, print_rows, row

ROUNDS = 3
RATIOS = (0.75, 0.5, 0.25)
HELD_OUT_CLIPS = 300
TARGET_SPEEDUP = 1.8
TARGET_AGREEMENT = 0.95


def _is_target(keep_by: str, ratio: float) -> bool:
    return keep_by in ("energy", "attention") and ratio == 0.5


def ast_base_rows() -> list[dict]:
    from audiovis.models.ast import ASTConfig, ASTModel
    from audiovis.models.pruning import PrunedModel, convert_stride

    torch.manual_seed(0)
    model = ASTModel(ASTConfig()).eval()
    x = torch.randn(1, 128, 1024)
    rows = []
    with torch.inference_mode():
        for keep_by in ("energy", "attention"):
            for ratio in RATIOS:
                pruned = PrunedModel(model, ratio, keep_by)
                t_full, t_pruned = alternating(lambda: model(x), lambda: pruned(x), rounds=ROUNDS)
                speedup = t_full / t_pruned
                target = _is_target(keep_by, ratio)
                rows.append(row(
                    "pruning", f"AST-base {keep_by} keep {ratio} (prune at block {pruned.prune_layer}): speed-up",
                    speedup, "x", peer="unpruned AST-base", peer_value=t_full * 1000, ratio=speedup,
                    target=f">= {TARGET_SPEEDUP}x" if target else None, met=speedup >= TARGET_SPEEDUP if target else None,
                ))
        plain = PrunedModel(model, 0.5, "energy", fuse_dropped=False)
        t_full, t_plain = alternating(lambda: model(x), lambda: plain(x), rounds=ROUNDS)
        rows.append(row("pruning", "AST-base energy keep 0.5, dropped patches discarded (no fused token): speed-up",
                        t_full / t_plain, "x", peer="unpruned AST-base", peer_value=t_full * 1000, ratio=t_full / t_plain))
        coarse = convert_stride(model, 16)
        t_full, t_coarse = alternating(lambda: model(x), lambda: coarse(x), rounds=ROUNDS)
        rows.append(row("pruning", "AST-base stride 16 (512 patches): speed-up", t_full / t_coarse, "x",
                        peer="unpruned AST-base", peer_value=t_full * 1000, ratio=t_full / t_coarse))
    return rows


def _ast_cut_stride16(model):
    """The demo model at stride 16 with AST's own position-embedding adaptation (centre cut), the peer."""
    from audiovis.models import checkpoints as ckpt
    from audiovis.models.pruning import convert_stride

    coarse = convert_stride(model, 16)
    pos = model.pos_embed.detach()
    grid = ckpt.adapt_grid_embed(pos[:, 2:], model.grid.grid_shape, coarse.grid.grid_shape)
    with torch.no_grad():
        coarse.pos_embed.copy_(torch.cat([pos[:, :2], grid], dim=1))
    return coarse


def demo_rows() -> list[dict]:
    import numpy as np

    import audiovis as av
    from audiovis.datasets import SyntheticEvents
    from audiovis.demo import EVAL_SEED

    model = av.load_demo_model()
    data = SyntheticEvents(HELD_OUT_CLIPS, seed=EVAL_SEED)
    result = av.compute_tradeoff(model, data, RATIOS, keep_by=["energy", "attention"], strides=[16],
                                 batch_size=8, repeats=ROUNDS, progress=False)
    full = result.row("full")
    rows = [row("pruning", f"demo model unpruned, {HELD_OUT_CLIPS} held-out clips: {result.score_name}",
                full["score"], "", target=None)]
    for r in result.rows[1:]:
        name = r["method"] if r["method"].startswith("stride") else f"{r['method']} keep {r['keep_ratio']}"
        target = _is_target(r["method"], r["keep_ratio"])
        rows.append(row("pruning", f"demo {name}: speed-up", r["speedup"], "x", peer="unpruned demo",
                        peer_value=full["time_ms"], ratio=r["speedup"],
                        target=f">= {TARGET_SPEEDUP}x" if target else None,
                        met=r["speedup"] >= TARGET_SPEEDUP if target else None))
        rows.append(row("pruning", f"demo {name}: top-1 agreement", r["agreement"], "", ratio=None,
                        target=f">= {TARGET_AGREEMENT:.0%}" if target else None,
                        met=r["agreement"] >= TARGET_AGREEMENT if target else None))
        rows.append(row("pruning", f"demo {name}: {result.score_name}", r["score"], ""))

    plain = av.compute_tradeoff(model, data, [0.5], keep_by="energy", fuse_dropped=False,
                                batch_size=8, repeats=ROUNDS, progress=False).row("energy", 0.5)
    rows.append(row("pruning", "demo energy keep 0.5, dropped patches discarded (no fused token): top-1 agreement",
                    plain["agreement"], "", peer="fused (default)", peer_value=result.row("energy", 0.5)["agreement"],
                    target=f">= {TARGET_AGREEMENT:.0%}", met=plain["agreement"] >= TARGET_AGREEMENT))
    rows.append(row("pruning", "demo energy keep 0.5, dropped patches discarded: speed-up", plain["speedup"], "x",
                    target=f">= {TARGET_SPEEDUP}x", met=plain["speedup"] >= TARGET_SPEEDUP))

    coarse = result.row("stride 16")
    peer = _ast_cut_stride16(model)
    x = torch.stack([model.spectrogram(data[i].audio).values for i in range(len(data))])
    with torch.inference_mode():
        top_full = torch.cat([model(x[i:i + 8]) for i in range(0, len(x), 8)]).argmax(-1)
        top_peer = torch.cat([peer(x[i:i + 8]) for i in range(0, len(x), 8)]).argmax(-1)
    peer_agreement = float(np.mean((top_full == top_peer).numpy()))
    rows.append(row("pruning", "demo stride 16: top-1 agreement, location-preserving pos-embed vs AST centre cut",
                    coarse["agreement"], "", peer="AST centre cut", peer_value=peer_agreement))
    return rows


def run() -> list[dict]:
    return ast_base_rows() + demo_rows()


if __name__ == "__main__":
    print_rows(run())
