"""What a collapsed LoRA run looks like inside, from each run's last checkpoint (the end of training):

- token similarity: mean cosine between the last-layer states of two different tokens of one dev
  sentence (1.0: every token looks the same to the head, so it can only predict the label prior), and the
  same for the base model (adapter disabled);
- update size: ||scale * B @ A|| / ||W|| (Frobenius) over the LoRA-targeted weights, mean and max;
- dev tokens predicted as an entity tag (not O).

    python experiments/lora_collapse/anatomy.py logs/experiments/lora_collapse
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from localize.runs import build_datamodule, load_run


def token_similarity(model, batches) -> list[float]:
    """Per layer (embeddings first), the mean cosine between two different tokens of a sentence."""
    sums, count = None, 0
    for batch in batches:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
        for i, m in enumerate(batch["attention_mask"].bool()):
            per_layer = []
            for layer in out.hidden_states:
                h = torch.nn.functional.normalize(layer[i][m].float(), dim=-1)
                cos, n = h @ h.T, int(m.sum())
                per_layer.append(float((cos.sum() - cos.diagonal().sum()) / (n * (n - 1))))
            sums = per_layer if sums is None else [a + b for a, b in zip(sums, per_layer)]
            count += 1
    return [s / count for s in sums]


def update_sizes(model) -> dict[str, float]:
    sizes = {}
    for name, module in model.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            a, b = module.lora_A["default"].weight, module.lora_B["default"].weight
            delta = module.scaling["default"] * (b @ a)
            sizes[name.split("encoder.")[-1]] = float(delta.norm() / module.base_layer.weight.norm())
    return sizes


def prior_loss(batches) -> float:
    """Cross-entropy on dev of the best constant prediction (the dev label frequencies): the dev loss of a
    model that gives every token the same distribution."""
    labels = torch.cat([b["labels"][b["labels"] >= 0] for b in batches])
    p = torch.bincount(labels).float() / len(labels)
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def entity_rate(module, batches) -> float:
    o = module.label_names.index("O")
    predicted = total = 0
    for batch in batches:
        logits = module.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        keep = batch["labels"] >= 0
        predicted += int((logits.argmax(-1)[keep] != o).sum())
        total += int(keep.sum())
    return predicted / total


def main(folder: str) -> int:
    rows = ["| run | lr | token similarity, last layer (trained / base) | first layer at > 0.99 | update size mean "
            "/ max (largest) | dev tokens tagged as entities |", "|---|---|---|---|---|---|"]
    for run in sorted(p.parent for p in Path(folder).glob("**/run.json")):
        last = run / "checkpoints" / "last.ckpt"
        if not last.exists():
            continue
        module = load_run(str(run), ckpt_path=str(last), allow_degenerate=True)
        dm = build_datamodule(module.run_info)
        dm.setup("fit")
        batches = list(dm.val_dataloader())
        with torch.inference_mode():
            trained = token_similarity(module.model, batches)
            with module.model.disable_adapter():
                base = token_similarity(module.model, batches)
            sizes = update_sizes(module.model)
            rate = entity_rate(module, batches)
        top = max(sizes, key=sizes.get) if sizes else None
        size = f"{sum(sizes.values()) / len(sizes):.3f} / {sizes[top]:.3f} (`{top}`)" if sizes else "–"
        first = next((i for i, s in enumerate(trained) if s > 0.99), None)
        lr = module.run_info.cfg.adapter.lr
        rows.append(f"| {run.parent.name}/{run.name} | {lr:.2e} | {trained[-1]:.3f} / {base[-1]:.3f} | "
                    f"{'none' if first is None else first} | {size} | {rate:.3f} |")
    print("\n".join(rows))
    if len(rows) > 2:
        print(f"\nDev loss of the label prior (every token given the dev label frequencies): {prior_loss(batches):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
