"""The report's Training section: loss curves, per-checkpoint gain/alignment tax, the chosen one."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from test_report import _browser, _page_problems, _parse, chromium  # noqa: F401 -- a fixture

from conftest import binary_run, flipped_pair
from ftguard.compare import compare
from ftguard.errors import UsageError
from ftguard.record import ModelInfo, RunRecord, write_run
from ftguard.report import render_report, write_report
from ftguard.report.training import training_context
from ftguard.train.record import (
    BestCheckpoint,
    CheckpointEval,
    DataSourceInfo,
    DataSummary,
    LogPoint,
    MemoryEstimate,
    TrainRecord,
    ValidationPoint,
    discover_train_record,
    find_train_record,
    write_train_record,
)

HOSTILE = "<script>alert(1)</script>"
STEPS = (25, 50, 75, 100)
GAIN = (0.04, 0.09, 0.14, 0.17)
FORGETTING = (0.005, 0.01, 0.018, 0.06)
GATE_FAILURE = "general/knowledge acc: relative drop 6.0% exceeds 5%"


def _record() -> TrainRecord:
    """A LoRA run stopped early at step 100 of 120: loss falls, validation loss turns up after
    step 75, gain rises and the alignment tax falls, step 75 is chosen and step 100 fails the gate."""
    log = [LogPoint(step=s, epoch=s / 120, loss=round(2.5 * math.exp(-s / 40) + 0.9, 4),
                    lr=2e-4 * min(s / 10, 1.0) * (0.5 + 0.5 * math.cos(math.pi * s / 120)),
                    tokens=s * 512, elapsed=s * 0.4)
           for s in range(5, 101, 5)]
    checkpoints = [CheckpointEval(step=s, run=f"evals/step-{s:06d}.json",
                                  checkpoint=f"checkpoints/step-{s:06d}",
                                  headline={"legal/clauses/acc": 0.5 + g, "general/knowledge/acc": 0.7 - f},
                                  target_score=0.5 + g, gain=g, alignment_tax=-f,
                                  gate_passed=s != 100, gate_failures=[GATE_FAILURE] if s == 100 else [],
                                  val_loss=v, seconds=12.5)
                   for s, g, f, v in zip(STEPS, GAIN, FORGETTING, (2.0, 1.6, 1.45, 1.5), strict=True)]
    return TrainRecord(
        ftguard_version="0.test", created="2025-01-01T00:00:00Z", finished="2025-01-01T00:10:00Z",
        status="stopped_early", stop_reason="validation loss rose for 2 evaluations",
        method="lora",
        base=ModelInfo(spec="tiny-base", fingerprint="sha256:tinybase", dtype="float32", backend="hf",
                       path="/models/tiny-base"),
        config={"method": "lora", "optim": {"lr": 2e-4}},
        trainable_params=12_288, total_params=1_000_000,
        data=DataSummary(
            sources=[DataSourceInfo(name="legal", path="data/legal.jsonl", sha256="a" * 64,
                                    format="instruction", rows=800, truncated=3, dropped=1,
                                    tokens=90_000, ratio=0.6, final_ratio=0.4),
                     DataSourceInfo(name=f"replay {HOSTILE}", path="data/replay.jsonl", sha256="b" * 64,
                                    format="messages", rows=400, tokens=40_000, ratio=0.4,
                                    final_ratio=0.6)],
            validation=DataSourceInfo(name="val", path="data/val.jsonl", sha256="c" * 64,
                                      format="instruction", rows=50, tokens=5_000),
            train_examples=1200, validation_examples=50),
        memory_estimate=MemoryEstimate(weights=4_000_000, gradients=49_152, optimizer=98_304,
                                       activations=2_000_000, total=6_147_456,
                                       available=16 * 2**30, fits=True),
        peak_memory=300 * 2**20, planned_steps=120, steps=100, tokens_per_second=1234.5,
        timings={"model_load": 0.5, "train": 40.0, "eval": 50.0, "total": 95.0},
        log=log, validation=[ValidationPoint(step=s, loss=c.val_loss or 0) for s, c in zip(STEPS, checkpoints)],
        checkpoints=checkpoints,
        best=BestCheckpoint(step=75, rule="target_passing_gate",
                            reason="highest target score among checkpoints that pass the gate"),
        output="adapter",
        warnings=[f"validation loss rose after step 75: possible overfitting {HOSTILE}"])


def _chart(page: str, chart_id: str) -> str:
    return page.split(f'id="{chart_id}"', 1)[1].split("</svg>", 1)[0]


def _circles(svg: str, cls: str) -> list[dict[str, str | None]]:
    return [a for tag, a in _parse("<svg " + svg).tags
            if tag == "circle" and cls in (a.get("class") or "").split()]


def test_training_report_draws_checkpoints_chosen_and_failing() -> None:
    page = render_report(_record())
    doc = _parse(page)
    text = " ".join(" ".join(doc.text).split())

    svg = _chart(page, "checkpoint-chart")
    for series in ("gain", "forgetting"):
        points = [p for p in _circles(svg, series) if p.get("data-step")]
        assert [int(p["data-step"]) for p in points] == list(STEPS)  # one point per checkpoint
        xs = [float(p["cx"]) for p in points]
        assert xs == sorted(xs) and len(set(xs)) == 4
        ys = [float(p["cy"]) for p in points]
        # gain rises and the alignment tax falls: higher value = higher on the page
        assert ys == sorted(ys, reverse=series == "gain")
        failing = [int(p["data-step"]) for p in points if "fail" in p["class"].split()]
        assert failing == [100]
        chosen = [int(p["data-step"]) for p in points if "chosen" in p["class"].split()]
        assert chosen == [75]
    assert 'class="zero"' in svg
    assert re.search(r'<g class="mark" data-step="75">', svg) and "chosen: step 75" in svg
    gain_75 = next(p for p in _circles(svg, "gain") if p.get("data-step") == "75")
    mark_x = float(re.search(r'class="chosen" x1="([\d.]+)"', svg)[1])
    assert mark_x == float(gain_75["cx"])  # the vertical line sits on the chosen checkpoint
    assert "gate FAILS: " + GATE_FAILURE in svg

    loss = _chart(page, "loss-chart")
    assert 'class="line train"' in loss and 'class="line val"' in loss
    assert "training loss" in loss and "validation loss" in loss and "chosen: step 75" in loss
    train_path = re.search(r'class="line train" d="([^"]+)"', loss)[1]
    assert train_path.count("L") == 19  # 20 log points
    assert "lr-chart" in page

    rows = page.split('id="checkpoints"', 1)[1].split("</table>", 1)[0]
    trs = re.findall(r'<tr class="([^"]*)" data-step="(\d+)">', rows)
    assert [(c.strip(), int(s)) for c, s in trs] == [("", 25), ("", 50), ("chosen", 75), ("failed", 100)]
    assert "+14.0%" in rows and "-6.0%" in rows and GATE_FAILURE in rows and "★ chosen" in rows

    assert "lora" in text and "100 of 120 planned" in text and "stopped_early" in text
    assert "validation loss rose for 2 evaluations" in text and "1,234 tokens/s" in text
    assert "300.00 MiB" in text and "5.86 MiB on cpu" in text and "fits" in text
    assert "60% → 40%" in text and "40% → 60%" in text and "data/legal.jsonl" in text
    assert "evals/step-000075.json" in text  # checkpoint evals listed, as text
    assert not any(tag == "a" for tag, _ in doc.tags)

    # untrusted text stays text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert f"possible overfitting {HOSTILE}" in text and f"replay {HOSTILE}" in text
    assert not doc.scripts
    assert "http://" not in page and "https://" not in page and "url(" not in page


def test_training_context_survives_sparse_and_broken_records() -> None:
    rec = _record()
    bare = rec.model_copy(update={"log": [], "validation": [], "checkpoints": [], "best": None,
                                  "warnings": [], "peak_memory": None, "tokens_per_second": None})
    ctx = training_context(bare)
    assert ctx["loss_chart"] is None and ctx["checkpoint_chart"] is None and ctx["lr_chart"] is None
    assert "Training" in render_report(bare)
    nan = rec.model_copy(update={"log": [p.model_copy(update={"loss": float("nan")}) if p.step == 50 else p
                                         for p in rec.log]})
    path = training_context(nan)["loss_chart"]["series"][0]["path"]
    assert path.count("M") == 2 and "nan" not in path.lower()  # a gap, not a broken path


def _runs(adapter: Path | None) -> tuple[RunRecord, RunRecord]:
    general = flipped_pair(400, 30, 5)
    legal = flipped_pair(200, 5, 40, seed=1)
    base = binary_run("base", {("general", "knowledge"): general[0], ("legal", "clauses"): legal[0]})
    tuned = binary_run("tuned", {("general", "knowledge"): general[1], ("legal", "clauses"): legal[1]})
    if adapter is not None:
        tuned = tuned.model_copy(update={"model": tuned.model.model_copy(update={"adapter": str(adapter)})})
    return base, tuned


def test_comparison_picks_up_the_train_record_beside_the_adapter(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "adapter").mkdir(parents=True)
    write_train_record(_record(), out / "train_record.json")
    base, tuned = _runs(out / "adapter")
    assert find_train_record(tuned.model) == out / "train_record.json"
    comparison = compare(base, tuned, resamples=200)
    assert 'id="training"' not in render_report(comparison)  # the renderer reads no files
    page = render_report(comparison, train=discover_train_record(comparison.tuned))
    assert 'id="training"' in page and 'id="checkpoint-chart"' in page and "FAIL" in page
    assert page.count("<h1>") == 1  # the section, not a second page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page

    plain = compare(*_runs(None), resamples=200)
    assert discover_train_record(plain.tuned) is None
    plain = render_report(plain, train=discover_train_record(plain.tuned))
    assert 'id="training"' not in plain


def test_find_train_record_never_fails(tmp_path: Path) -> None:
    info = ModelInfo(spec="x", fingerprint="f", dtype="float32", backend="hf")
    assert find_train_record(info) is None
    assert find_train_record(info.model_copy(update={"adapter": str(tmp_path / "nowhere" / "a")})) is None
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "train_record.json").write_text("{not json")
    assert find_train_record(info.model_copy(update={"adapter": str(tmp_path / "broken" / "adapter")})) is None
    # a record beside an unrelated folder is not this model's
    write_train_record(_record(), tmp_path / "train_record.json")
    assert find_train_record(info.model_copy(update={"path": str(tmp_path / "other-model")})) is None
    assert find_train_record(info.model_copy(update={"path": str(tmp_path / "adapter")})) is not None
    # a full fine-tune's model folder, and the output folder itself
    full = _record().model_copy(update={"output": "model", "method": "full"})
    write_train_record(full, tmp_path / "full" / "train_record.json")
    assert find_train_record(info.model_copy(update={"path": str(tmp_path / "full" / "model")})) \
        == tmp_path / "full" / "train_record.json"
    assert find_train_record(info.model_copy(update={"path": str(tmp_path / "full")})) \
        == tmp_path / "full" / "train_record.json"


def test_explicit_train_record_only_goes_with_a_comparison() -> None:
    base, _ = _runs(None)
    with pytest.raises(UsageError, match="Comparison"):
        render_report(base, train=_record())


def test_cli_report_and_compare_with_train_record(tmp_path: Path, run_cli) -> None:
    out = tmp_path / "out"
    write_train_record(_record(), out / "train_record.json")
    code, stdout, err = run_cli("report", out / "train_record.json", "-o", tmp_path / "t.html")
    assert code == 0, err
    page = (tmp_path / "t.html").read_text()
    assert 'id="checkpoint-chart"' in page and "chosen: step 75" in page and "t.html" in stdout
    code, _, err = run_cli("report", out, "-o", tmp_path / "folder.html")  # the output folder
    assert code == 0 and 'id="loss-chart"' in (tmp_path / "folder.html").read_text(), err

    (out / "adapter").mkdir()
    base, tuned = _runs(out / "adapter")
    write_run(base, tmp_path / "a.json")
    write_run(tuned, tmp_path / "b.json")
    code, _, _ = run_cli("compare", tmp_path / "a.json", tmp_path / "b.json", "--resamples", "200",
                         "--out", tmp_path / "c.json", "--html", tmp_path / "c.html")
    assert code == 1 and 'id="checkpoint-chart"' in (tmp_path / "c.html").read_text()
    code, _, _ = run_cli("report", tmp_path / "c.json", "-o", tmp_path / "r.html")
    assert code == 0 and 'id="training"' in (tmp_path / "r.html").read_text()

    # explicit --train for runs that do not point at the training output
    write_run(_runs(None)[1], tmp_path / "plain.json")
    code, _, _ = run_cli("compare", tmp_path / "a.json", tmp_path / "plain.json", "--resamples", "200",
                         "--html", tmp_path / "p.html", "--train", out / "train_record.json")
    assert code == 1 and 'id="checkpoint-chart"' in (tmp_path / "p.html").read_text()


@pytest.mark.parametrize(("name", "content", "message"), [
    ("train_record.json", "{not json", "not valid JSON"),
    ("train_record.json", '{"hello": 1}', "not a train record"),
    ("bad.json", '{"planned_steps": 10, "method": "lora"}', "not a train record"),
])
def test_cli_report_rejects_malformed_train_record(tmp_path: Path, run_cli, name: str, content: str,
                                                   message: str) -> None:
    bad = tmp_path / name
    bad.write_text(content)
    code, _, err = run_cli("report", bad, "-o", tmp_path / "x.html")
    assert code == 2 and name in err and message in err and "Traceback" not in err
    assert not (tmp_path / "x.html").exists()


def test_cli_train_option_errors(tmp_path: Path, run_cli) -> None:
    base, tuned = _runs(None)
    write_run(base, tmp_path / "a.json")
    write_run(tuned, tmp_path / "b.json")
    (tmp_path / "bad.json").write_text('{"planned_steps": 1}')
    code, _, err = run_cli("compare", tmp_path / "a.json", tmp_path / "b.json", "--resamples", "200",
                           "--html", tmp_path / "c.html", "--train", tmp_path / "bad.json")
    assert code == 2 and "not a train record" in err and not (tmp_path / "c.html").exists()
    code, _, err = run_cli("compare", tmp_path / "a.json", tmp_path / "b.json",
                           "--train", tmp_path / "bad.json")
    assert code == 2 and "--html" in err
    write_train_record(_record(), tmp_path / "t" / "train_record.json")
    code, _, err = run_cli("report", tmp_path / "a.json", "-o", tmp_path / "x.html",
                           "--train", tmp_path / "t" / "train_record.json")
    assert code == 2 and "Comparison" in err and not (tmp_path / "x.html").exists()


def test_training_report_in_headless_chromium(tmp_path: Path, chromium: str) -> None:  # noqa: F811
    out = tmp_path / "out"
    (out / "adapter").mkdir(parents=True)
    write_train_record(_record(), out / "train_record.json")
    alone = write_report(_record(), tmp_path / "train.html")
    comparison = compare(*_runs(out / "adapter"), resamples=200)
    both = write_report(comparison, tmp_path / "cmp.html",
                        train=discover_train_record(comparison.tuned))
    for report in (alone, both):
        shot = tmp_path / f"{report.stem}.png"
        done = _browser(chromium, tmp_path, report.as_uri(), f"--screenshot={shot}", "--window-size=1280,2400")
        assert shot.exists() and shot.stat().st_size > 10_000, done.stderr[-2000:]
        assert not _page_problems(done.stderr)
        done = _browser(chromium, tmp_path, report.as_uri(), "--dump-dom")
        assert not _page_problems(done.stderr)
        dom = done.stdout
        assert "chosen: step 75" in dom and 'id="checkpoint-chart"' in dom, done.stderr[-2000:]
        doc = _parse(dom)
        assert f"possible overfitting {HOSTILE}" in " ".join(doc.text)
        assert all(a.get("type") == "application/json" or report is both
                   for tag, a in doc.tags if tag == "script")
        for tag, attrs in doc.tags:  # nothing the browser could fetch
            assert not any(attrs.get(k) for k in ("src", "href", "srcset", "action")), (tag, attrs)


def test_cli_report_without_out_names_a_train_report_after_its_folder(
        tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "lora-a"
    write_train_record(_record(), out / "train_record.json")
    monkeypatch.chdir(tmp_path)
    code, stdout, err = run_cli("report", out / "train_record.json")
    assert (code, stdout) == (0, "wrote reports/lora-a.html\n"), err
    code, stdout, err = run_cli("report", "lora-a")  # the output folder itself
    assert (code, stdout) == (0, "wrote reports/lora-a.html\n"), err
    assert 'id="loss-chart"' in (tmp_path / "reports" / "lora-a.html").read_text()
