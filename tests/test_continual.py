"""Continual localization (localize.continual): the stage data, the grown head, the strategies and the
sequence record, on the tiny model and the embedded ja NER corpus (2 class-incremental stages)."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from omegaconf import open_dict
from safetensors.torch import load_file

from localize.config import compose
from localize.continual.callbacks import L2SPCallback, copy_weights
from localize.continual.matrix import transfer
from localize.continual.sequence import Sequence, merged
from localize.data.errors import DataError
from localize.data.stages import check_part, part_of, replay_sample, write_examples
from localize.models.token_cls import score_map
from localize.runs import load_run
from localize.utils import build

from conftest import FAST

COMMON = ["task=ner", "+locale=ja", "data.split_sizes=[300,50,150]", *FAST]
TRAIN = ["trainer.max_epochs=2", "trainer.limit_train_batches=2"]


def _cfg(out, strategy: str, stage1: list[str] = (), extra: list[str] = ()):
    cfg = compose([f"strategy={strategy}", "seed=3", *extra], "continual", out_dir=out)
    with open_dict(cfg):
        cfg.sequence.common, cfg.sequence.train = COMMON, TRAIN
        cfg.sequence.stages[1].overrides = list(cfg.sequence.stages[1].overrides) + list(stage1)
    return cfg


@pytest.fixture(scope="module")
def seq_root(tmp_path_factory):
    return tmp_path_factory.mktemp("continual")


@pytest.fixture(scope="module")
def sequential(seq_root):
    out = seq_root / "sequential"
    return out, Sequence(_cfg(out, "sequential")).run()


# ----------------------------------------------------------------------------- the matrix
def test_transfer_on_a_hand_checked_matrix():
    R = [[0.8, 0.3, None], [0.6, 0.9, 0.2], [0.5, 0.7, 0.6]]
    m = transfer(R, [0.1, 0.1, 0.0])
    assert m["final_average"] == pytest.approx((0.5 + 0.7 + 0.6) / 3)
    assert m["bwt"] == pytest.approx(((0.5 - 0.8) + (0.7 - 0.9)) / 2)  # -0.25: forgetting
    assert m["forgetting"] == pytest.approx(0.25)
    assert m["fwt"] == pytest.approx(((0.3 - 0.1) + (0.2 - 0.0)) / 2)
    assert transfer([[0.8, None], [0.6, 0.9]], [0.1, 0.1])["fwt"] is None  # a cell it needs is missing


# ----------------------------------------------------------------------------- stage data
def test_parts_are_disjoint_seeded_and_cover_the_data():
    examples = [{"tokens": [str(i)], "tags": ["O"]} for i in range(101)]
    a, b = part_of(examples, 2, 0, 7), part_of(examples, 2, 1, 7)
    assert not {id(x) for x in a} & {id(x) for x in b} and len(a) + len(b) == 101
    assert part_of(examples, 2, 0, 7) == a and part_of(examples, 2, 0, 8) != a
    with pytest.raises(DataError, match=r"data.part=2 is out of range .* Fix: data.part=0"):
        check_part(2, 2)
    assert check_part(2, 0) == (2, 0)  # the fix named


def test_replay_draws_the_configured_size_seeded(tmp_path):
    path = str(tmp_path / "r.jsonl")
    write_examples(path, [{"tokens": [str(i)], "tags": ["O"]} for i in range(40)])
    ten = replay_sample([path], 10, 1)
    assert len(ten) == 10 and ten == replay_sample([path], 10, 1) and ten != replay_sample([path], 10, 2)
    assert len(replay_sample([path], 0.25, 1)) == 10 and len(replay_sample([path], None, 1)) == 40
    with pytest.raises(DataError, match=r"hold 40 examples. Fix: data.replay_size=40"):
        replay_sample([path], 41, 1)
    assert len(replay_sample([path], 40, 1)) == 40


def test_entity_types_keep_only_those_types_and_a_wrong_name_names_the_fix(tmp_path):
    dm = build(compose(COMMON + ["data.entity_types=[PERSON]"], out_dir=tmp_path).data)
    tags = {t for exs in dm.splits.values() for ex in exs for t in ex["tags"]}
    assert tags == {"O", "B-PERSON", "I-PERSON"} and dm.label_names == ["O", "B-PERSON", "I-PERSON"]
    with pytest.raises(DataError, match=r"names \['PERSONS'\].* Fix: data.entity_types=\[PERSON\]"):
        build(compose(COMMON + ["data.entity_types=[PERSONS,PERSON]"], out_dir=tmp_path).data).splits


def test_a_type_the_stage_does_not_score_counts_as_O():
    labels = ["O", "B-PER", "I-PER", "B-DATE", "I-DATE"]
    assert score_map(labels, ["PER"]).tolist() == [0, 1, 2, 0, 0]


def test_merged_overrides_keep_the_last_value_per_key():
    assert merged(["adapter=full", "+x=1", "adapter=lora", "x=2"]) == ["adapter=lora", "+x=2"]


# ----------------------------------------------------------------------------- strategies
def test_sequential_sequence_record(sequential):
    out, state = sequential
    assert state["status"] == "finished" and state["stage_names"] == ["names", "numbers"]
    R = [[c and c["value"] for c in row] for row in state["matrix"]]
    assert R[0][0] is not None and R[1][0] is not None and R[1][1] is not None
    assert R[0][1] is None and "0,1" in state["not_measured"]  # stage 0's model has no DATE/TIME/... output
    assert state["metrics"]["bwt"] == pytest.approx(R[1][0] - R[0][0])
    for i, j in ((0, 0), (1, 0), (1, 1)):  # every cell is the evaluation record's score, with its CI
        rec = json.loads((out / "evals" / f"after-{i}-on-{j}" / "run.json").read_text())
        assert rec["metrics"]["test/f1"] == R[i][j] and state["matrix"][i][j]["n"] == 64  # 2 test batches of 32
        assert rec["metrics_ci"]["test/f1"]["low"] <= R[i][j] <= rec["metrics_ci"]["test/f1"]["high"]
    assert json.loads((out / "continual.json").read_text())["metrics"] == state["metrics"]
    assert (out / "continual.png").stat().st_size > 0
    test = state["forgetting_tests"][0]
    assert test["difference"] == pytest.approx(R[1][0] - R[0][0]) and 0 < test["p_value"] <= 1
    stage1 = json.loads((out / "stages" / "1-numbers" / "run.json").read_text())
    assert f"init_from={out / 'stages' / '0-names'}" in stage1["overrides"]
    assert stage1["labels"][:7] == state["stages"][0]["labels"]  # old labels first, in their order
    assert {t[2:] for t in stage1["labels"][7:]} == {"DATE", "TIME", "MONEY", "PERCENT", "ARTIFACT"}


def test_the_grown_head_keeps_the_old_rows_bit_identical(sequential, tmp_path):
    out, state = sequential
    old = load_run(str(out / "stages" / "0-names"))
    new = build(compose(state["stages"][1]["overrides"], out_dir=tmp_path).module,
                label_names=state["stages"][1]["labels"])
    fresh = {n: p.detach().clone() for n, p in new.model.named_parameters()}
    info = copy_weights(old, new)
    assert info["grown"] == ["classifier.weight", "classifier.bias"]
    w_old, w_new = old.model.classifier.weight, new.model.classifier.weight
    for i, label in enumerate(old.label_names):
        assert torch.equal(w_new[new.label_names.index(label)], w_old[i])
    for j in range(len(old.label_names), len(new.label_names)):  # new rows keep their initialisation
        assert torch.equal(w_new[j], fresh["classifier.weight"][j])
    body = "bert.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(dict(new.model.named_parameters())[body], dict(old.model.named_parameters())[body])


def test_adapter_per_stage_cannot_forget(seq_root):
    state = Sequence(_cfg(seq_root / "bank", "adapter_per_stage")).run()
    R = [[c and c["value"] for c in row] for row in state["matrix"]]
    # R[1][0] is a fresh evaluation (its own record) of stage 0's adapter after stage 1 trained.
    assert R[1][0] == R[0][0] and state["metrics"]["bwt"] == 0.0
    assert state["cost"]["models_kept"] == 2
    assert "init_from" not in " ".join(state["stages"][1]["overrides"])


@pytest.fixture(scope="module")
def replay(seq_root):
    return Sequence(_cfg(seq_root / "replay", "replay", extra=["strategy.replay_size=20"])).run()


def test_replay_mixes_the_configured_count_of_earlier_examples(seq_root, replay):
    state = replay
    assert state["stages"][0]["replayed"] == 0 and state["stages"][1]["replayed"] == 20
    assert state["stages"][1]["train_n"] == state["stages"][0]["train_n"] + 20
    replayed = [json.loads(x) for x in (seq_root / "replay" / "replay" / "0-names.jsonl").read_text().splitlines()]
    assert len(replayed) == state["stages"][0]["train_n"]  # stage 0's own examples, names only
    assert {t[2:] for ex in replayed for t in ex["tags"] if t != "O"} <= {"PERSON", "LOCATION", "ORGANIZATION"}


def test_a_strategy_shares_the_first_stage_of_another_and_gets_the_same_matrix(seq_root, sequential, replay,
                                                                              monkeypatch):
    import localize.train

    out_seq, _ = sequential
    trained, real = [], localize.train.train
    monkeypatch.setattr(localize.train, "train", lambda cfg: trained.append(cfg.paths.output_dir) or real(cfg))
    out = seq_root / "replay-shared"
    state = Sequence(_cfg(out, "replay", extra=["strategy.replay_size=20", f"share_from={out_seq}"])).run()
    assert [str(p) for p in trained] == [str(out / "stages" / "1-numbers")]  # stage 0 was not trained again
    assert {"stages/0-names", "evals/after-0-on-0", "evals/zero-shot-on-0", "evals/zero-shot-on-1"} <= set(state["shared"])
    assert (out / "stages" / "0-names" / "run.json").read_bytes() == \
        (out_seq / "stages" / "0-names" / "run.json").read_bytes()
    values = lambda st: [[c and c["value"] for c in row] for row in st["matrix"]]  # noqa: E731
    assert values(state) == values(replay)  # the same sequence as the replay run that trained its own stage 0
    assert state["stages"][1]["replayed"] == 20
    with pytest.raises(ValueError, match=r"holds no continual.json: point it at a finished sequence dir"):
        Sequence(_cfg(seq_root / "x", "replay", extra=[f"share_from={seq_root / 'nowhere'}"])).run()
    other = _cfg(seq_root / "y", "replay", extra=[f"share_from={out_seq}"])
    with open_dict(other):
        other.sequence.train = ["trainer.max_epochs=1"]
    with pytest.raises(ValueError, match=r"ran another version of sequence"):
        Sequence(other).run()


def test_l2sp_adds_the_pull_to_the_gradient():
    class M:
        model = torch.nn.Linear(2, 2)
        device = torch.device("cpu")

        def log(self, *a, **k):
            pass

    m, cb = M(), L2SPCallback(alpha=0.5)
    cb.setup(None, m, "fit")
    cb.on_fit_start(None, m)
    start = m.model.weight.detach().clone()
    with torch.no_grad():
        m.model.weight.add_(1.0)
    m.model.weight.grad = torch.zeros_like(start)
    m.model.bias.grad = torch.zeros(2)
    cb.on_after_backward(type("T", (), {"accumulate_grad_batches": 1})(), m)
    assert torch.allclose(m.model.weight.grad, torch.full_like(start, 0.5))
    assert torch.equal(m.model.bias.grad, torch.zeros(2))  # unchanged weight: no pull


def test_l2sp_keeps_the_later_stage_nearer_the_earlier_one(seq_root, sequential):
    out_seq, _ = sequential
    out = seq_root / "l2sp"
    Sequence(_cfg(out, "l2sp", extra=["strategy.alpha=1000"])).run()

    def moved(root):
        a = load_file(str(root / "stages" / "0-names" / "model" / "trainable.safetensors"))
        b = load_file(str(root / "stages" / "1-numbers" / "model" / "trainable.safetensors"))
        return sum(float((b[k] - a[k]).pow(2).sum()) for k in a if a[k].shape == b[k].shape)

    assert moved(out) < 0.5 * moved(out_seq)


def test_an_interrupted_sequence_resumes_to_the_uninterrupted_result(seq_root, sequential):
    _, straight = sequential
    out = seq_root / "resumed"
    crash = ["+callbacks.crash._target_=test_resume.CrashAfter", "+callbacks.crash.steps=3"]  # killed job
    with pytest.raises(RuntimeError, match="killed"):
        Sequence(_cfg(out, "sequential", stage1=crash)).run()
    stopped = json.loads((out / "continual.json").read_text())
    assert stopped["status"] == "failed" and stopped["matrix"][1] == [None, None]
    assert (out / "stages" / "1-numbers" / "checkpoints" / "last.ckpt").exists()
    stage0 = (out / "stages" / "0-names" / "run.json").stat().st_mtime_ns
    state = Sequence(_cfg(out, "sequential")).run()
    assert (out / "stages" / "0-names" / "run.json").stat().st_mtime_ns == stage0  # not retrained
    assert state["status"] == "finished"
    assert [[c and c["value"] for c in row] for row in state["matrix"]] == \
        [[c and c["value"] for c in row] for row in straight["matrix"]]
    with pytest.raises(ValueError, match="resume it with the same sequence= and strategy="):
        Sequence(_cfg(out, "replay"))
    shutil.rmtree(out)



def test_the_report_has_a_continual_section_and_counts_no_stage_as_a_run(seq_root, sequential, tmp_path):
    from localize.report import write_report

    Sequence(_cfg(seq_root / "replay", "replay", extra=["strategy.replay_size=20"])).run()  # recorded: no rerun
    paths = write_report(str(seq_root), str(tmp_path / "report"))
    md = open(paths["markdown"]).read()
    assert paths["runs"] == 0  # stage runs and cell evaluations belong to their sequence
    assert "## Continual sequences" in md
    row = next(line for line in md.splitlines() if line.startswith("| ner_types | replay |"))
    _, seq_state = sequential
    assert f"{seq_state['metrics']['bwt']:+.4f}" in next(line for line in md.splitlines()
                                                         if line.startswith("| ner_types | sequential |"))
    assert "(p = " in row  # replay paired against sequential on the same examples and seed


def test_ewc_pulls_by_the_fisher_of_the_earlier_stage(seq_root, sequential):
    out_seq, _ = sequential
    out = seq_root / "ewc"
    Sequence(_cfg(out, "ewc", extra=["strategy.alpha=1000"])).run()
    fisher = load_file(str(out / "stages" / "1-numbers" / "fisher.safetensors"))
    assert not (out / "stages" / "0-names" / "fisher.safetensors").exists()  # a first stage pulls nothing
    assert torch.cat([f.flatten() for f in fisher.values()]).mean().item() == pytest.approx(1.0, rel=1e-4)
    assert fisher["classifier.weight"][7:].abs().sum() == 0  # the grown rows: nothing earlier depends on them
    assert fisher["classifier.weight"][:7].abs().sum() > 0

    def moved(root):
        a = load_file(str(root / "stages" / "0-names" / "model" / "trainable.safetensors"))
        b = load_file(str(root / "stages" / "1-numbers" / "model" / "trainable.safetensors"))
        return sum(float((b[k] - a[k]).pow(2).sum()) for k in a if a[k].shape == b[k].shape)

    assert moved(out) < moved(out_seq)


@pytest.mark.slow  # ~30 s: two tiny causal-LM stages with generation-based scoring (make test-slow)
def test_a_locale_sequence_of_translation_stages(seq_root):
    """en->ja then en->zh on the system catalogs with the tiny causal LM: chrF per locale after each stage."""
    cfg = compose(["sequence=translation_locales", "strategy=adapter_per_stage", "seed=3"], "continual",
                  out_dir=seq_root / "mt")
    with open_dict(cfg):
        cfg.sequence.common = ["task=translation", "model=tiny_causal", *[o for o in FAST if not o.startswith("model=")],
                               "data.max_eval_examples=6", "module.generation.max_new_tokens=6"]
        # The sequence's own training overrides (LoRA, no per-stage zero-shot or test pass), on 16 pairs.
        cfg.sequence.train = [o if not o.startswith("data.max_train_examples=") else "data.max_train_examples=16"
                              for o in cfg.sequence.train]
        cfg.sequence.stages = cfg.sequence.stages[:2]
    state = Sequence(cfg).run()
    assert state["metric"] == "test/chrf" and state["status"] == "finished"
    R = [[c and c["value"] for c in row] for row in state["matrix"]]
    assert R[0][0] is not None and R[1][1] is not None and R[1][0] == R[0][0] and R[0][1] is None
    assert all(c is not None and c["n"] == 6 for c in state["zero_shot"])
    stage0 = json.loads((seq_root / "mt" / "stages" / "0-ja" / "run.json").read_text())
    assert "zeroshot/chrf" not in stage0["metrics"] and "test/chrf" not in stage0["metrics"]  # the sequence scores it

    # Sequential fine-tuning on the same plan: it shares the base model's zero-shot scores (and the first stage:
    # the same LoRA run), and its stage-0 model answers stage 1's test, so the report has forward transfer.
    seq_cfg = compose(["sequence=translation_locales", "strategy=sequential", "seed=3", f"share_from={seq_root / 'mt'}"],
                      "continual", out_dir=seq_root / "mt-seq")
    with open_dict(seq_cfg):
        seq_cfg.sequence = cfg.sequence
    seq = Sequence(seq_cfg).run()
    assert {"evals/zero-shot-on-0", "evals/zero-shot-on-1", "stages/0-ja", "evals/after-0-on-0"} == set(seq["shared"])
    from localize.report.continual import summarize_sequences

    row = summarize_sequences(str(seq_root / "mt-seq")).iloc[0]
    Rs = [[c and c["value"] for c in r] for r in seq["matrix"]]
    assert row.fwt == pytest.approx(Rs[0][1] - seq["zero_shot"][1]["value"]) == pytest.approx(seq["metrics"]["fwt"])
    assert row.fwt_low <= row.fwt <= row.fwt_high


def test_named_types_are_the_label_set_even_where_a_stage_share_lacks_one(tmp_path):
    """With seed 42, share 0 of the stage-2 types has MONEY in its dev half only: the share still builds, with
    MONEY in its label set (it used to fail: "labels never seen in train")."""
    types = "data.entity_types=[DATE,TIME,MONEY,PERCENT,ARTIFACT]"
    dm = build(compose(COMMON + [types, "data.parts=2", "data.part=0", "seed=42"], out_dir=tmp_path).data)
    assert not any("MONEY" in t for ex in dm.splits["train"] for t in ex["tags"])
    assert any("MONEY" in t for ex in dm.splits["validation"] for t in ex["tags"])
    assert dm.label_names == ["O"] + [f"{p}-{t}" for t in ("ARTIFACT", "DATE", "MONEY", "PERCENT", "TIME") for p in "BI"]
