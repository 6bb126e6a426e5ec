"""module.crf=true: the CRF's likelihood and decoding against enumeration, and a CRF run end to end
(trained transitions, stored and reloaded with the head, predict and export)."""
from __future__ import annotations

import itertools
import json

import pytest
import torch

from localize.models.crf import CRFHead, constrained, crf_head, crf_nll, training_mask
from localize.models.decoding import iob2_transitions, viterbi_tags
from localize.models.token_cls import b_to_i_ids

LABELS = ["O", "B-X", "I-X", "B-Y", "I-Y"]


def _head(gen: torch.Generator) -> CRFHead:
    head = CRFHead(torch.nn.Linear(2, len(LABELS)), len(LABELS))
    with torch.no_grad():
        for p in (head.transitions, head.start, head.end):
            p.copy_(torch.randn(p.shape, generator=gen))
    return head


def _path_score(emissions, path, trans, start, end) -> float:
    total = float(start[path[0]] + emissions[0, path[0]] + end[path[-1]])
    for w in range(1, len(path)):
        total += float(trans[path[w - 1], path[w]] + emissions[w, path[w]])
    return total


def test_nll_is_log_partition_minus_gold_score_by_enumeration():
    gen = torch.Generator().manual_seed(0)
    scores = constrained(_head(gen), iob2_transitions(LABELS))
    emissions = torch.randn(2, 4, len(LABELS), generator=gen)
    tags = torch.tensor([[1, 2, 0, 3], [3, 4, 4, 0]])
    mask = torch.tensor([[True, True, True, True], [True, True, True, False]])  # row 2: a truncated word
    expected = []
    for b in range(2):
        n = int(mask[b].sum())
        paths = itertools.product(range(len(LABELS)), repeat=n)
        log_z = torch.logsumexp(torch.tensor([_path_score(emissions[b], p, *scores) for p in paths]), 0)
        expected.append(float(log_z) - _path_score(emissions[b], tags[b, :n].tolist(), *scores))
    got = crf_nll(emissions, tags, mask, *scores)
    assert got.item() == pytest.approx(sum(expected) / 2, abs=1e-4)
    assert all(e > 0 for e in expected)


def test_a_masked_word_inside_a_sentence_is_skipped_by_both_terms():
    gen = torch.Generator().manual_seed(1)
    scores = constrained(_head(gen), iob2_transitions(LABELS))
    emissions = torch.randn(1, 3, len(LABELS), generator=gen)
    tags = torch.tensor([[1, 0, 2]])
    skipped = crf_nll(emissions, tags, torch.tensor([[True, False, True]]), *scores)
    alone = crf_nll(emissions[:, [0, 2]], tags[:, [0, 2]], torch.ones(1, 2, dtype=torch.bool), *scores)
    assert skipped.item() == pytest.approx(alone.item(), abs=1e-5)


def test_viterbi_with_learned_scores_is_the_best_allowed_path():
    gen = torch.Generator().manual_seed(2)
    allowed = iob2_transitions(LABELS)
    head = _head(gen)
    b_to_i = b_to_i_ids(LABELS)
    n = len(LABELS)
    for _ in range(5):
        logits = torch.randn(1, 4, n, generator=gen)
        word_index = torch.tensor([[0, 1, 2, 3]])
        got = viterbi_tags(logits, word_index, b_to_i, allowed, crf=(head.transitions, head.start, head.end))[0]
        emissions = logits[0].log_softmax(-1)

        def ok(p):
            return allowed[n, p[0]] and all(allowed[a, b] for a, b in zip(p, p[1:]))

        best = max((p for p in itertools.product(range(n), repeat=4) if ok(p)),
                   key=lambda p: _path_score(emissions, p, head.transitions.detach(), head.start.detach(),
                                             head.end.detach()))
        assert got.tolist() == list(best)


def test_a_forbidden_transition_outscores_nothing_even_when_learned_high():
    head = CRFHead(torch.nn.Linear(2, 3), 3)
    with torch.no_grad():
        head.transitions[0, 2] = 50.0  # O -> I-X, which IOB2 forbids
    logits = torch.tensor([[[5.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    tags = viterbi_tags(logits, torch.tensor([[0, 1]]), b_to_i_ids(["O", "B-X", "I-X"]),
                        iob2_transitions(["O", "B-X", "I-X"]), crf=(head.transitions, head.start, head.end))
    assert tags.tolist() != [[0, 2]]


def test_training_mask_drops_truncated_unlabelled_and_shared_words():
    word_index = torch.tensor([[1, 2, 2, 3, -1]])
    word_labels = torch.tensor([[0, 1, 2, -100, -100]])
    assert training_mask(word_index, word_labels).tolist() == [[True, True, False, False, False]]


@pytest.mark.parametrize("adapter", ["lora", "full_frozen_emb"])
def test_a_crf_run_trains_its_transitions_and_reloads_them(train_run, adapter, tmp_path):
    from conftest import compose_cfg
    from localize.evaluate import evaluate
    from localize.runs import load_run

    run = train_run(f"crf_{adapter}", [f"adapter={adapter}", "module.crf=true", "trainer.max_epochs=2"])
    record = json.loads(open(f"{run}/run.json").read())
    assert record["status"] in ("finished", "degenerate") and "test/f1" in record["metrics"]
    module = load_run(run)
    head = crf_head(module.model)
    assert head.transitions.abs().sum() > 0, "the CRF transitions did not train (still zeros)"
    # The reloaded head holds the trained transitions: decoding with them reproduces the run's test F1.
    again = evaluate(compose_cfg([f"run={run}", "trainer=cpu", "logger=none"], tmp_path / "ev", config_name="evaluate"))
    assert again["metrics"]["test/f1"] == pytest.approx(record["metrics"]["test/f1"], abs=1e-6)
    # predict decodes with the CRF too: its tags for a text are the CRF Viterbi path of the reloaded head.
    from localize.runs import load_predictor

    predictor = load_predictor(run)
    assert predictor.module.decode == predictor.module.crf_decode
    tags = [t.get("tag") for o in predictor.predict_texts(["東京都に住む山田太郎"]) for t in o["tokens"]]
    assert tags and all(t is not None for t in tags)


def test_under_lora_only_the_adapter_and_the_crf_head_change():
    from hydra.utils import instantiate

    from conftest import compose_cfg

    torch.manual_seed(0)
    cfg = compose_cfg(["+locale=ja", "task=ner", "model=tiny_random", "adapter=lora", "module.crf=true",
                       "data.batch_size=4", "data.max_train_examples=12"], "/tmp/x")
    dm = instantiate(cfg.data)
    dm.setup("fit")
    module = instantiate(cfg.module, **dm.module_kwargs())
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-2)
    for batch in list(dm.train_dataloader())[:3]:
        module.training_loss(batch).backward()
        opt.step()
        opt.zero_grad()
    changed = {n for n, p in module.named_parameters() if not torch.equal(before[n], p.detach())}
    assert changed and all("lora_" in n or "modules_to_save" in n for n in changed), sorted(changed)[:5]
    assert any(n.endswith("transitions") for n in changed) and any(n.endswith("linear.weight") for n in changed)


def test_export_writes_the_emission_classifier_and_says_so(train_run, tmp_path):
    from transformers import AutoModelForTokenClassification

    from localize.export import export

    run = train_run("crf_full_frozen_emb", ["adapter=full_frozen_emb", "module.crf=true", "trainer.max_epochs=2"])
    report = export(run, str(tmp_path / "hf"))
    assert report["max_abs_logit_diff"] < 1e-4 and "CRF" in report["crf"]
    plain = AutoModelForTokenClassification.from_pretrained(tmp_path / "hf")
    assert isinstance(plain.classifier, torch.nn.Linear)
    with pytest.raises(ValueError, match="CRF head.*leave out merge=false"):
        export(train_run("crf_lora", ["adapter=lora", "module.crf=true", "trainer.max_epochs=2"]),
               str(tmp_path / "adapter"), merge=False)
