"""What a run does to the splits its reader gave, in this order (``LocalizeDataModule.splits``):

0. ``data.corrections``: corrected examples replace those with the same text (in any split: a correction
   wins); new texts join train;
1. ``data.train_ids``: keep the training examples a selection lists (active learning rounds);
2. ``data.parts/part``: one share of train and dev (continual stages on one corpus);
3. ``data.max_train_examples`` / ``data.max_eval_examples``: caps;
4. ``data.label_noise``: injected label flips (``localize.data.noise``);
5. ``data.augment``: augmented copies of the training examples (``localize.data.augment``), from the
   run's own (capped, possibly noisy) training split, so dev and test never see one;
6. ``data.perturb``: the test split perturbed in place (``localize.data.augment.perturb``, same ids):
   ``localize.evaluate +perturb=<suite>`` scores each perturbation against the clean test;
7. ``data.replay_from``: earlier stages' examples added to train (after the caps: a cap limits the run's
   own data, not the replay), never augmented.

Each step records what it did in ``data_info`` (the run record's ``data``).
"""
from __future__ import annotations

from typing import Any

from localize.data.augment import augment, perturb
from localize.data.errors import DataError
from localize.data.noise import check_noise, flip_examples
from localize.data.pool import keep_ids
from localize.data.stages import part_of, replay_sample


def shape_splits(dm: Any, splits: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """``splits`` after the datamodule ``dm``'s settings (see the module docstring)."""
    info = dm.data_info
    if dm.corrections:
        splits, info["corrections"] = _corrections(dm, splits)
    if dm.train_ids is not None:  # before any cap
        splits["train"] = keep_ids(splits["train"], str(dm.train_ids))
        info["train_ids"] = {"file": str(dm.train_ids), "kept": len(splits["train"])}
    if dm.parts is not None:  # before the caps: a capped stage keeps its own share
        splits.update({k: part_of(splits[k], dm.parts, dm.part, dm.seed) for k in ("train", "validation")})
    caps = {"train": dm.max_train_examples, "validation": dm.max_eval_examples, "test": dm.max_eval_examples}
    splits = {k: v[: caps[k]] if caps.get(k) else v for k, v in splits.items()}
    if dm.label_noise is not None:
        splits = _label_noise(dm, splits)
    if dm.augment:
        added, info["augment"] = augment(splits["train"], list(dm.augment), dm.augment_factor, dm.seed, dm.locale,
                                         dm.normalization, dm.augment_options)
        splits["train"] = splits["train"] + added
    if dm.perturb:
        splits["test"], info["perturb"] = perturb(splits["test"], list(dm.perturb), dm.seed, dm.locale,
                                                  dm.normalization, lexicon_from=splits["train"])
    if dm.replay_from:
        replayed = replay_sample(dm.replay_from, dm.replay_size, dm.seed)
        dm.check_examples(replayed, "data.replay_from")
        splits["train"] = splits["train"] + replayed
        info["replay"] = {"from": list(dm.replay_from), "size": len(replayed)}
    return splits


def _label_noise(dm: Any, splits: dict[str, list[dict]]) -> dict[str, list[dict]]:
    fraction, names = check_noise(dm.label_noise, dm.label_noise_splits)
    if dm.flip_label is None:
        raise DataError(f"data.label_noise={dm.label_noise}: {dm.task_name} examples have no label to "
                        f"flip. Fix: data.label_noise=null")
    notes: list[dict] = []
    for name in names:
        splits[name], flipped = flip_examples(splits[name], fraction, dm.label_names, dm.seed, dm.flip_label)
        notes += [{**n, "split": name} for n in flipped]
    dm.data_info["label_noise"] = {"fraction": fraction, "splits": names, "flipped": len(notes), "examples": notes}
    return splits


def _corrections(dm: Any, splits: dict[str, list[dict]]) -> tuple[dict[str, list[dict]], dict[str, Any]]:
    """Corrections win over the examples with the same (normalised) text; the rest are added to train."""
    from localize.data.datamodule import normalize

    path = str(dm.corrections)
    fixed = dm.read_file(path)
    dm.check_examples(fixed, f"data.corrections={path}")
    key = lambda ex: normalize(dm.example_text(ex), dm.normalization).strip()  # noqa: E731
    by_text = {key(ex): ex for ex in fixed}  # a text corrected twice: the last correction wins
    used: set[str] = set()
    replaced = {}
    for name, exs in splits.items():
        keys = [key(ex) for ex in exs]  # once per example
        splits[name] = [{**by_text[k], "id": ex.get("id"), "corrected_from": path} if k in by_text else ex
                        for ex, k in zip(exs, keys)]
        hit = [k for k in keys if k in by_text]
        replaced[name] = len(hit)
        used.update(hit)
    added = [{**ex, "corrected_from": path} for k, ex in by_text.items() if k not in used]
    splits["train"] = splits["train"] + added
    return splits, {"file": path, "read": len(fixed), "replaced": replaced, "added_to_train": len(added)}
