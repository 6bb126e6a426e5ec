"""Back-translation for ``data.augment=[back_translation]`` (classification texts only).

Each training text goes to a pivot language and back through two translation runs of this project, and the
round trip, a paraphrase with the same label, is the augmented copy:

    python -m localize.train +locale=zh task=translation adapter=lora task.reverse=true   # zh→en: to_pivot
    python -m localize.train +locale=zh task=translation adapter=lora                     # en→zh: from_pivot
    python -m localize.train +locale=zh task=sentiment 'data.augment=[back_translation]' \\
        data.back_translation.to_pivot=<zh→en run dir> data.back_translation.from_pivot=<en→zh run dir>

Hydra builds a :class:`RoundTrip` from ``data.back_translation`` and hands it to the datamodule, so
``localize.data`` translates without importing the run loader. Both runs are checked before any text is
translated: a translation run each, of this locale, one each way. Decoding is the runs' own (greedy by
default), so a text has one paraphrase (``augment_factor`` must be 1). Texts longer than ``max_chars`` get
no copy (a UI-string model is trained on short strings) and are counted. NER is not offered: a translation
does not carry the word tags across.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from localize.data.errors import DataError
from localize.runs import load_predictor, read_run

KEYS = ("to_pivot", "from_pivot")
TRAIN = {"to_pivot": "python -m localize.train +locale={code} task=translation adapter=lora task.reverse=true",
         "from_pivot": "python -m localize.train +locale={code} task=translation adapter=lora"}


class RoundTrip:
    """xx → pivot → xx through two finished translation runs.

    Args:
        to_pivot: a xx→en run dir (trained with ``task.reverse=true``).
        from_pivot: an en→xx run dir of the same locale.
        max_chars: longer texts are not translated (no copy).
        batch_size: generation batch size (None: the runs' own).
    """

    def __init__(self, to_pivot: str | None = None, from_pivot: str | None = None, max_chars: int = 200,
                 batch_size: int | None = None) -> None:
        self.runs = {"to_pivot": to_pivot, "from_pivot": from_pivot}
        self.max_chars, self.batch_size = int(max_chars), batch_size

    def check(self, locale: Mapping[str, Any]) -> None:
        """Both runs exist and go the right way for ``locale``, or one :class:`DataError` line with the fix."""
        code = locale.get("code")
        for key in KEYS:
            value = self.runs[key]
            fix = f"train one with `{TRAIN[key].format(code=code)}` and set data.back_translation.{key}=<its run dir>"
            if not value:
                raise DataError(f"data.augment=[back_translation] needs data.back_translation.{key}: {fix}")
            try:
                info = read_run(str(value))
            except (FileNotFoundError, ValueError) as e:
                raise DataError(f"data.back_translation.{key}={value}: {e}") from None
            task, reverse = info.cfg.task, key == "to_pivot"
            if str(task.name) != "translation" or bool(task.get("reverse", False)) != reverse:
                way = "xx→en (task.reverse=true)" if reverse else "en→xx"
                raise DataError(f"data.back_translation.{key}={value} is not a {way} translation run "
                                f"(task={task.name}, reverse={task.get('reverse', False)}): {fix}")
            if info.record.get("locale") != code:
                raise DataError(f"data.back_translation.{key}={value} translates locale "
                                f"{info.record.get('locale')}, not {code}: {fix}")

    def __call__(self, texts: Sequence[str]) -> tuple[dict[str, str], dict[str, Any]]:
        """``({text: its round trip}, a record)`` for the distinct ``texts`` of at most ``max_chars``; a
        round trip that comes back empty is left out (no copy)."""
        distinct = set(texts)
        todo = sorted(t for t in distinct if len(t) <= self.max_chars)
        current = todo
        for key in KEYS:  # one run loaded at a time: two models need not fit at once
            predictor = load_predictor(str(self.runs[key]), batch_size=self.batch_size)
            current = [r["translation"] for r in predictor.predict_texts(current)] if current else []
            del predictor
        paraphrases = {t: p.strip() for t, p in zip(todo, current) if p.strip()}
        return paraphrases, {**{k: str(v) for k, v in self.runs.items()}, "translated": len(todo),
                             "empty": len(todo) - len(paraphrases), "longer_than_max_chars": len(distinct) - len(todo)}
