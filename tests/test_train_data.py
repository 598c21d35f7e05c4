"""Training data pipeline: formats, masking, collation, weighted loss, packing, mixing."""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import sys
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from conftest import write_jsonl
from ftguard.errors import DataError
from ftguard.train.collate import Collator
from ftguard.train.config import DataConfig
from ftguard.train.dataset import StreamStats, iter_source, load_source, split_validation
from ftguard.train.formats import detect_format, extract, render, use_chat_template
from ftguard.train.loss import weighted_causal_lm_loss
from ftguard.train.mixing import mixture_order, planned_draws
from ftguard.train.packing import pack
from ftguard.train.tokenize import Example, encode

EOS = "<|endoftext|>"
INSTRUCTION = {"instruction": "What is the capital of France?", "input": "Answer briefly.",
               "output": "Paris"}
PROMPT_COMPLETION = {"prompt": "Review: I loved this film.\nSentiment:", "completion": " positive"}
CHAT = {"messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "The sky is?"},
                     {"role": "assistant", "content": "blue"},
                     {"role": "user", "content": "Grass is?"},
                     {"role": "assistant", "content": "green"}]}


@pytest.fixture(scope="module")
def tok(tiny_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def plain_tok(tok: Any) -> Any:
    other = copy.deepcopy(tok)
    other.chat_template = None
    return other


@pytest.fixture(scope="module")
def model(tiny_model: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model, dtype="float32").eval()


def build(row: dict[str, Any], tok: Any, *, chat: bool, max_length: int = 256,
          overlong: str = "truncate", plw: float = 0.0) -> tuple[str, Example | None, str]:
    fmt = detect_format(row, "x.jsonl", 1)
    assert isinstance(fmt, str)
    fields, problems = extract(row, fmt, "x.jsonl", 1)
    assert not problems and fields is not None
    text, spans = render(fields, fmt, tok, chat)
    example, status = encode(text, spans, tok, max_length, overlong, plw)
    return text, example, status


def learned(ex: Example, tok: Any) -> str:
    return tok.decode([t for t, w in zip(ex.input_ids, ex.weights) if w == 1.0])


def masked(ex: Example, tok: Any) -> str:
    return tok.decode([t for t, w in zip(ex.input_ids, ex.weights) if w == 0.0])


# --- formats and masking -------------------------------------------------------------------

def test_plain_layout_masks_prompt(tok: Any) -> None:
    text, ex, status = build(INSTRUCTION, tok, chat=False)
    assert text == "What is the capital of France?\n\nAnswer briefly.\n\nParis" + EOS
    assert status == "ok" and ex is not None
    assert ex.input_ids[0] == tok.bos_token_id
    assert learned(ex, tok) == "Paris" + EOS
    assert masked(ex, tok) == EOS + "What is the capital of France?\n\nAnswer briefly.\n\n"

    no_input = {"instruction": "Say yes", "output": "yes"}
    assert build(no_input, tok, chat=False)[0] == "Say yes\n\nyes" + EOS

    text, ex, _ = build(PROMPT_COMPLETION, tok, chat=False)
    assert text == PROMPT_COMPLETION["prompt"] + " positive" + EOS
    assert ex is not None and learned(ex, tok) == " positive" + EOS
    assert masked(ex, tok) == EOS + PROMPT_COMPLETION["prompt"]

    text, ex, _ = build(CHAT, tok, chat=False)
    assert text == ("system: Be brief.\nuser: The sky is?\nassistant: blue" + EOS
                    + "\nuser: Grass is?\nassistant: green" + EOS)
    # BPE merges the space after "assistant:" into " blue": a token that overlaps a response
    # span is learnt, since predicting it is what produces the response.
    assert ex is not None and learned(ex, tok) == " blue" + EOS + " green" + EOS


def test_chat_template_masks_prompt(tok: Any) -> None:
    text, ex, _ = build(INSTRUCTION, tok, chat=True)
    assert text == ("<user>What is the capital of France?\n\nAnswer briefly.\n<assistant>Paris\n"
                    + EOS)
    assert ex is not None and learned(ex, tok) == "Paris\n" + EOS
    assert masked(ex, tok) == EOS + "<user>What is the capital of France?\n\nAnswer briefly.\n" \
                                    "<assistant>"

    text, ex, _ = build(PROMPT_COMPLETION, tok, chat=True)
    assert ex is not None and learned(ex, tok) == " positive\n" + EOS


def test_multi_turn_learns_every_assistant_turn(tok: Any) -> None:
    text, ex, _ = build(CHAT, tok, chat=True)
    assert text == ("<system>Be brief.\n<user>The sky is?\n<assistant>blue\n" + EOS
                    + "<user>Grass is?\n<assistant>green\n" + EOS)
    assert ex is not None
    assert learned(ex, tok) == "blue\n" + EOS + "green\n" + EOS
    prompt = masked(ex, tok)
    assert "The sky is?" in prompt and "Grass is?" in prompt and "Be brief." in prompt
    assert "blue" not in prompt and "green" not in prompt


def test_prompt_loss_weight_and_eos_not_doubled(tok: Any) -> None:
    _, ex, _ = build(PROMPT_COMPLETION, tok, chat=False, plw=0.25)
    assert ex is not None and ex.weights[0] == 0.0
    assert set(ex.weights[1:]) == {0.25, 1.0}
    row = {"prompt": "Q:", "completion": " yes" + EOS}
    text, ex, _ = build(row, tok, chat=False)
    assert text == "Q: yes" + EOS and ex is not None and learned(ex, tok) == " yes" + EOS


def test_template_not_prefix_stable_is_an_error(tok: Any) -> None:
    odd = copy.deepcopy(tok)
    odd.chat_template = ("{% for m in messages %}{% if loop.last %}<{{ m['role'] }}>"
                         "{{ m['content'] }}{% endif %}{% endfor %}")
    fields, _ = extract(CHAT, "messages", "x.jsonl", 1)
    assert fields is not None
    with pytest.raises(DataError, match="not prefix-stable") as err:
        render(fields, "messages", odd, True)
    assert "chat_template: never" in str(err.value)


# --- collation and loss --------------------------------------------------------------------

def _examples(tok: Any, plw: float) -> list[Example]:
    rows = [INSTRUCTION, PROMPT_COMPLETION, CHAT, {"instruction": "Say yes", "output": "yes"}]
    out = []
    for row in rows:
        ex = build(row, tok, chat=True, plw=plw)[1]
        assert ex is not None
        out.append(ex)
    return out


def test_collator_labels_and_padding(tok: Any) -> None:
    examples = _examples(tok, 0.0)
    batch = Collator(tok.pad_token_id, packed=False)([e.to_feature() for e in examples])
    width = max(len(e.input_ids) for e in examples)
    assert batch["input_ids"].shape == (4, width)
    for row, ex in enumerate(examples):
        n = len(ex.input_ids)
        expected = [t if w == 1.0 else -100 for t, w in zip(ex.input_ids, ex.weights)]
        assert batch["labels"][row].tolist() == expected + [-100] * (width - n)
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (width - n)
        assert batch["loss_weights"][row, n:].sum().item() == 0.0
    assert "position_ids" not in batch


def test_loss_with_prompt_weight_one_equals_model_loss(tok: Any, model: Any) -> None:
    import torch

    examples = _examples(tok, 1.0)
    batch = Collator(tok.pad_token_id, packed=False)(examples)
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    labels=batch["labels"])
        ours = weighted_causal_lm_loss(out.logits, batch["labels"], batch["loss_weights"])
        assert abs(ours.item() - out.loss.item()) < 1e-5
        single = torch.tensor([examples[0].input_ids])
        ref = model(input_ids=single, labels=single)
        ours1 = weighted_causal_lm_loss(ref.logits, single, torch.ones_like(single).float())
        assert abs(ours1.item() - ref.loss.item()) < 1e-5


def test_loss_with_prompt_weight_zero_is_response_nll(tok: Any, model: Any) -> None:
    import torch

    examples = _examples(tok, 0.0)
    batch = Collator(tok.pad_token_id, packed=False)(examples)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        ours = weighted_causal_lm_loss(logits, batch["labels"], batch["loss_weights"])
        nlls = []
        for row, ex in enumerate(examples):
            logp = torch.log_softmax(logits[row].float(), dim=-1)
            for i in range(1, len(ex.input_ids)):
                if ex.weights[i] == 1.0:
                    nlls.append(-logp[i - 1, ex.input_ids[i]].item())
    assert abs(ours.item() - sum(nlls) / len(nlls)) < 1e-5
    assert len(nlls) == sum(int(w == 1.0) for e in examples for w in e.weights)


# --- packing -------------------------------------------------------------------------------

@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_logits_equal_unpacked(tok: Any, tiny_model: Path, attn: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype="float32",
                                                 attn_implementation=attn).eval()
    examples = _examples(tok, 0.0)
    lengths = [len(e.input_ids) for e in examples]
    rows = pack(examples, max_length=lengths[0] + lengths[1] + 1)
    assert [len(r.sources) for r in rows] == [2, 1, 1]  # greedy, in order, never split
    assert rows[0].position_ids == list(range(lengths[0])) + list(range(lengths[1]))
    batch = Collator(tok.pad_token_id, packed=True)(rows)
    assert "attention_mask" not in batch
    pad = batch["input_ids"].shape[1] - len(rows[2].input_ids)
    assert batch["position_ids"][2].tolist()[-pad:] == list(range(pad))  # own segment
    with torch.no_grad():  # no KV cache, else transformers ignores the packed positions
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                           use_cache=False).logits
        spots = [(0, 0), (0, lengths[0]), (1, 0), (2, 0)]
        for ex, (row, start) in zip(examples, spots):
            alone = model(input_ids=torch.tensor([ex.input_ids])).logits[0]
            got = packed[row, start:start + len(ex.input_ids)]
            assert torch.allclose(got, alone, atol=1e-4), (attn, row, start)
        # Same tokens, same weights: the packed loss equals the unpacked loss.
        flat = Collator(tok.pad_token_id, packed=False)(examples)
        ref_logits = model(input_ids=flat["input_ids"], attention_mask=flat["attention_mask"]).logits
        ref = weighted_causal_lm_loss(ref_logits, flat["labels"], flat["loss_weights"])
        got_loss = weighted_causal_lm_loss(packed, batch["labels"], batch["loss_weights"])
    assert abs(ref.item() - got_loss.item()) < 1e-5
    # The second packed example's first token is never trained from the first example.
    assert batch["labels"][0, lengths[0]].item() == -100


# --- mixing --------------------------------------------------------------------------------

@pytest.mark.parametrize("ratios", [(0.5, 0.5), (0.8, 0.2)])
def test_mixture_ratios(ratios: tuple[float, float]) -> None:
    order = mixture_order([300, 40], list(ratios), None, 1000, seed=3)
    share = sum(1 for s, _ in order if s == 0) / 1000
    assert abs(share - ratios[0]) <= 0.03
    assert order == mixture_order([300, 40], list(ratios), None, 1000, seed=3)
    assert order != mixture_order([300, 40], list(ratios), None, 1000, seed=4)
    # Within a source: a permutation per pass, re-shuffled when exhausted.
    small = [i for s, i in order if s == 1]
    assert sorted(small[:40]) == list(range(40)) and sorted(small[40:80]) == list(range(40))
    assert small[:40] != small[40:80]


def test_mixture_annealing() -> None:
    order = mixture_order([500, 500], [0.9, 0.1], [0.1, 0.9], 1000, seed=0)
    first = sum(1 for s, _ in order[:100] if s == 0) / 100
    last = sum(1 for s, _ in order[-100:] if s == 1) / 100
    assert first > 0.75 and last > 0.75
    middle = sum(1 for s, _ in order[400:600] if s == 0) / 200
    assert 0.35 < middle < 0.65


def test_single_file_order_and_planned_draws() -> None:
    total = planned_draws([10], [1.0], None, 2.5)
    assert total == 25
    order = mixture_order([10], [1.0], None, total, seed=1)
    epochs = [[i for _, i in order[k:k + 10]] for k in (0, 10)]
    assert all(sorted(e) == list(range(10)) for e in epochs) and epochs[0] != epochs[1]
    assert planned_draws([100, 50], [0.5, 0.5], None, 1) == 200
    assert planned_draws([100, 50], [0.3, 0.7], [0.7, 0.3], 2) == 400  # mean share 0.5


# --- loading and bad input -----------------------------------------------------------------

def test_load_source_and_split(tmp_path: Path, tok: Any) -> None:
    rows = [{"instruction": f"Count to {i}", "output": " ".join(["one"] * (i + 1))}
            for i in range(20)]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    examples, info = load_source(path, "auto", tok, DataConfig(), source=2)
    assert len(examples) == 20 and all(e.source == 2 for e in examples)
    assert info.format == "instruction" and info.rows == 20 and info.name == "train"
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info.tokens == sum(len(e.input_ids) for e in examples)
    train, val = split_validation(examples, 0.1, seed=0)
    assert len(val) == 2 and len(train) == 18
    assert {id(e) for e in train}.isdisjoint({id(e) for e in val})
    assert [id(e) for e in split_validation(examples, 0.1, seed=0)[1]] == [id(e) for e in val]
    assert len(split_validation(examples[:2], 0.05, seed=0)[1]) == 1
    assert split_validation(examples, 0.0, seed=0)[1] == []


def test_every_problem_reported_with_line(tmp_path: Path, tok: Any) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(INSTRUCTION) + "\n{not json\n"
                    + json.dumps({"instruction": "x"}) + "\n"
                    + json.dumps({"instruction": "x", "output": 3}) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_source(path, "auto", tok, DataConfig())
    text = str(err.value)
    assert "3 problems" in text and len(err.value.problems) == 3
    assert "bad.jsonl:2" in text and "not valid JSON" in text
    assert "bad.jsonl:3 [output]: missing key 'output'" in text and "'instruction'" in text
    assert "bad.jsonl:4 [output]" in text and "must be a string" in text


def test_bad_files(tmp_path: Path, tok: Any, plain_tok: Any) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match="empty.jsonl: is empty"):
        load_source(empty, "auto", tok, DataConfig())
    no_assistant = write_jsonl(tmp_path / "chat.jsonl", [
        {"messages": [{"role": "user", "content": "hi"}]}])
    with pytest.raises(DataError, match=r"chat.jsonl:1 \[messages\]: has no assistant turn"):
        load_source(no_assistant, "auto", tok, DataConfig())
    unknown = write_jsonl(tmp_path / "odd.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(DataError, match=r"odd.jsonl:1: cannot tell the row format"):
        load_source(unknown, "auto", tok, DataConfig())
    with pytest.raises(DataError, match="no chat template"):
        use_chat_template(plain_tok, "always")
    ok = write_jsonl(tmp_path / "ok.jsonl", [INSTRUCTION])
    with pytest.raises(DataError, match="'always'"):
        load_source(ok, "auto", plain_tok, DataConfig(chat_template="always"))
    assert use_chat_template(plain_tok, "auto") is False
    assert use_chat_template(tok, "auto") is True and use_chat_template(tok, "never") is False


def test_truncated_and_dropped_counts(tmp_path: Path, tok: Any) -> None:
    rows = [{"prompt": "Q:", "completion": " yes"},
            {"prompt": "Q:", "completion": " one two three four five" * 4},
            {"prompt": "The quick brown fox jumps over the lazy dog. " * 3, "completion": " no"}]
    path = write_jsonl(tmp_path / "long.jsonl", rows)
    cfg = DataConfig(max_length=16, chat_template="never")
    examples, info = load_source(path, "auto", tok, cfg)
    assert (info.rows, info.truncated, info.dropped, len(examples)) == (3, 1, 1, 2)
    assert max(len(e.input_ids) for e in examples) == 16
    examples, info = load_source(path, "auto", tok, cfg.model_copy(update={"overlong": "drop"}))
    assert (info.truncated, info.dropped, len(examples)) == (0, 2, 1)
    only_long = write_jsonl(tmp_path / "only_long.jsonl", rows[2:])
    with pytest.raises(DataError, match="all 1 examples were dropped") as err:
        load_source(only_long, "auto", tok, cfg)
    assert "max_length" in str(err.value)


# --- streaming -----------------------------------------------------------------------------

def test_streaming_matches_load_source_and_cycles(tmp_path: Path, tok: Any) -> None:
    rows = [INSTRUCTION, {"instruction": "Say yes", "output": "yes"},
            {"instruction": "Say no", "input": "now", "output": "no"}]
    path = write_jsonl(tmp_path / "s.jsonl", rows)
    examples, _ = load_source(path, "auto", tok, DataConfig(), source=1)
    streamed = list(islice(iter_source(path, "auto", tok, DataConfig(), 1), 7))
    assert [e.input_ids for e in streamed] == [e.input_ids for e in examples * 3][:7]
    assert [e.weights for e in streamed[:3]] == [e.weights for e in examples]
    assert all(e.source == 1 for e in streamed)


def test_streaming_reads_line_by_line(tmp_path: Path, tok: Any) -> None:
    good = json.dumps({"prompt": "Q:", "completion": " yes"}) + "\n"
    path = tmp_path / "big.jsonl"
    path.write_text(good * 30_000 + "{broken\n", encoding="utf-8")  # ~1 MB, bad last line
    assert path.stat().st_size > 1_000_000
    stats = StreamStats()
    first = list(islice(iter_source(path, "auto", tok, DataConfig(), stats=stats), 3))
    assert len(first) == 3 and stats.rows == 3  # the broken last line was never read
    small = tmp_path / "small.jsonl"
    small.write_text(good * 2 + "{broken\n", encoding="utf-8")
    stream = iter_source(small, "auto", tok, DataConfig())
    next(stream), next(stream)
    with pytest.raises(DataError, match=r"small.jsonl:3: is not valid JSON"):
        next(stream)


def test_streaming_mixture(tmp_path: Path, tok: Any) -> None:
    from ftguard.train.dataset import StreamingMixture

    a = write_jsonl(tmp_path / "a.jsonl", [{"prompt": "A:", "completion": " yes"}] * 3)
    b = write_jsonl(tmp_path / "b.jsonl", [{"prompt": "B:", "completion": " no"}] * 5)
    data = StreamingMixture([a, b], ["auto", "auto"], tok, DataConfig(), [0.9, 0.1], [0.1, 0.9],
                            total=200, seed=0)
    draws = [e.source for e in data]
    assert len(draws) == len(data) == 200
    assert draws == [e.source for e in data]
    assert draws[:40].count(0) > 28 and draws[-40:].count(1) > 28
    import torch.utils.data

    assert isinstance(data, torch.utils.data.IterableDataset)


def test_modules_do_not_import_torch() -> None:
    code = ("import sys; import ftguard.train.dataset, ftguard.train.collate, "
            "ftguard.train.loss, ftguard.train.packing, ftguard.train.mixing; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
