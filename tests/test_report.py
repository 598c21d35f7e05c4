"""`ftguard report` / `compare --html`: a self-contained, offline, injection-safe HTML report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import binary_run, flipped_pair
from ftguard.compare import compare
from ftguard.record import (
    Comparison,
    RunRecord,
    write_comparison,
    write_run,
)
from ftguard.report import render_report, write_report
from ftguard.report.render import SHOWN_FLIPS, json_island

HOSTILE = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "</textarea>")


def _runs() -> tuple[RunRecord, RunRecord]:
    general = flipped_pair(400, 30, 5)
    legal = flipped_pair(200, 5, 40, seed=1)
    return (binary_run("base", {("general", "knowledge"): general[0], ("legal", "clauses"): legal[0]}),
            binary_run("tuned", {("general", "knowledge"): general[1], ("legal", "clauses"): legal[1]}))


def _hostile_comparison() -> Comparison:
    c = compare(*_runs(), resamples=200)
    flips = list(c.flips)
    flips[0] = flips[0].model_copy(update={"prompt": HOSTILE[1], "base_prediction": HOSTILE[0],
                                           "tuned_prediction": HOSTILE[2] + "</script><b>x</b>",
                                           "target": HOSTILE[0]})
    return c.model_copy(update={"flips": flips})


class _Doc(HTMLParser):
    """Tags, attributes, text and script bodies of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._in_script: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = dict(attrs)
            self.scripts.append((self._in_script, ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = None

    def handle_data(self, data: str) -> None:
        if self._in_script is not None:
            attrs, body = self.scripts[-1]
            self.scripts[-1] = (attrs, body + data)
        else:
            self.text.append(data)


def _parse(page: str) -> _Doc:
    doc = _Doc()
    doc.feed(page)
    doc.close()
    return doc


def test_comparison_report_structure_and_escaping() -> None:
    c = _hostile_comparison()
    page = render_report(c)
    doc = _parse(page)
    text = " ".join(doc.text)
    assert "FAIL" in text and "tuned" in text and "sha256:base" in text
    assert c.failures and c.failures[0] in " ".join(text.split())  # failing rule in plain words
    assert "regressed significantly" in text and "alignment tax" in text.lower()
    assert sum(tag == "svg" for tag, _ in doc.tags) >= 2  # trade-off chart and per-task deltas
    assert any(tag == "line" and a.get("class") == "zero" for tag, a in doc.tags)
    rows = [a for tag, a in doc.tags if tag == "tr"]
    assert len(rows) >= len(c.rows) + len(c.flips)
    # hostile strings are text, never markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;/textarea&gt;" in page
    assert "<script>alert(1)" not in page and "<img src=x" not in page and "<b>x</b>" not in page
    for hostile in HOSTILE:
        assert hostile in text
    assert not any(tag in ("img", "b", "textarea") for tag, _ in doc.tags)
    # exactly the two scripts ftguard wrote: the JSON island and the filter
    assert [a.get("type") for a, _ in doc.scripts] == ["application/json", None]
    assert json.loads(doc.scripts[0][1])[0]["base"] == HOSTILE[0]
    assert "</" not in doc.scripts[0][1]


def test_report_has_no_external_references() -> None:
    page = render_report(_hostile_comparison())
    for tag, attrs in _parse(page).tags:
        for name in ("src", "href", "action", "srcset", "poster", "data"):
            assert not (attrs.get(name) or "").strip().lower().startswith(("http:", "https:", "//")), (tag, attrs)
        assert not (tag == "link" and attrs.get("rel") == "stylesheet")
    assert "@import" not in page and "url(" not in page
    assert "http://" not in page and "https://" not in page


def test_json_island_cannot_be_closed_by_data() -> None:
    data = [{"p": "</script><script>alert(1)</script>", "q": "<!-- x", "r": "a\u2028b & c"}]
    island = str(json_island(data))
    assert "<" not in island and ">" not in island and "&" not in island and "\u2028" not in island
    assert json.loads(island) == data


def test_many_flips_are_capped_in_the_dom_but_all_searchable() -> None:
    c = _hostile_comparison()
    many = [c.flips[1].model_copy(update={"id": f"item-{i}"}) for i in range(10_000)]
    page = render_report(c.model_copy(update={"flips": many}))
    doc = _parse(page)
    flip_rows = page.split('id="flip-rows"')[1].split("</tbody>")[0].count("<tr>")
    assert flip_rows == SHOWN_FLIPS
    assert len(json.loads(doc.scripts[0][1])) == 10_000
    assert len(page) < 6_000_000


def test_run_record_report_lists_results_and_samples() -> None:
    base, _ = _runs()
    base.suites[0].tasks[0].samples[0] = base.suites[0].tasks[0].samples[0].model_copy(
        update={"prediction": HOSTILE[0], "prompt": HOSTILE[1]})
    page = render_report(base)
    doc = _parse(page)
    text = " ".join(doc.text)
    assert "Results" in text and "general" in text and "knowledge" in text and "clauses" in text
    assert any(tag == "svg" for tag, _ in doc.tags)
    assert sum(tag == "rect" for tag, _ in doc.tags) == 2  # one bar per (task, metric)
    assert "knowledge-0" in text and HOSTILE[0] in text and "<script>alert(1)" not in page
    assert not doc.scripts


def test_cli_report_and_compare_html(tmp_path: Path, run_cli) -> None:
    a, b = _runs()
    write_run(a, tmp_path / "a.json")
    write_run(b, tmp_path / "b.json")
    code, out, _ = run_cli("compare", tmp_path / "a.json", tmp_path / "b.json", "--resamples", "200",
                           "--out", tmp_path / "cmp.json", "--html", tmp_path / "out" / "cmp.html")
    assert code == 1 and "FAIL" in (tmp_path / "out" / "cmp.html").read_text()
    code, out, _ = run_cli("report", tmp_path / "cmp.json", "-o", tmp_path / "r.html")
    assert code == 0 and "r.html" in out and "FAIL" in (tmp_path / "r.html").read_text()
    code, out, _ = run_cli("report", tmp_path / "a.json", "-o", tmp_path / "run.html")
    assert code == 0 and "knowledge" in (tmp_path / "run.html").read_text()
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("content", ["{not json", '{"hello": 1}', "[1, 2]", None])
def test_cli_report_rejects_bad_input(tmp_path: Path, run_cli, content: str | None) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    code, _, err = run_cli("report", bad, "-o", tmp_path / "x.html")
    assert code == 2 and "bad.json" in err
    assert not (tmp_path / "x.html").exists()


def test_write_report_is_atomic_and_readable(tmp_path: Path) -> None:
    c = _hostile_comparison()
    write_comparison(c, tmp_path / "c.json")
    path = write_report(c, tmp_path / "deep" / "r.html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert os.stat(path).st_mode & 0o044  # others can read a shared report (umask allowing)
    assert [p.name for p in path.parent.iterdir()] == ["r.html"]


# -- a real browser -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and cannot be installed here (not root / no apt-get)")
    try:
        subprocess.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium",
                       shell=True, check=True, capture_output=True, timeout=600)
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"chromium could not be installed with apt-get: {exc}")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("apt-get install chromium did not provide a chromium binary")
    return found


def _browser(chromium: str, tmp: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0", *extra, url],
        check=False, capture_output=True, text=True, timeout=120)


def _page_problems(stderr: str) -> list[str]:
    """Console messages, JS errors, CSP refusals and failed loads chromium logged."""
    return [line for line in stderr.splitlines()
            if "CONSOLE" in line or "Uncaught" in line or "Refused" in line
            or ("ERR_" in line and "file://" in line)]


def test_report_in_headless_chromium(tmp_path: Path, chromium: str) -> None:
    c = _hostile_comparison()
    many = c.flips + [c.flips[1].model_copy(update={"id": f"extra-{i}"}) for i in range(2_000)]
    report = write_report(c.model_copy(update={"flips": many}), tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    done = _browser(chromium, tmp_path, report.as_uri(), f"--screenshot={shot}", "--window-size=1280,2000")
    assert shot.exists() and shot.stat().st_size > 10_000, done.stderr[-2000:]
    assert not _page_problems(done.stderr)

    done = _browser(chromium, tmp_path, report.as_uri() + "#q=extra-1999", "--dump-dom")
    dom = done.stdout
    assert "FAIL" in dom and "regressed significantly" in dom, done.stderr[-2000:]
    assert not _page_problems(done.stderr)
    assert f'data-flips-ready="{len(many)}"' in dom  # the filter script ran over all flips
    assert f"1 of {len(many)} match" in dom and "extra-1999" in dom  # found beyond the first 500
    doc = _parse(dom)
    assert not any(tag in ("img", "b", "textarea") for tag, _ in doc.tags)
    assert sum(a.get("type") != "application/json" for tag, a in doc.tags if tag == "script") == 1

    done = _browser(chromium, tmp_path, report.as_uri() + "#q=onerror", "--dump-dom")
    doc = _parse(done.stdout)
    assert HOSTILE[1] in " ".join(doc.text) and HOSTILE[0] in " ".join(doc.text)  # text, via textContent
    assert not any(tag in ("img", "b", "textarea") for tag, _ in doc.tags)
    assert not _page_problems(done.stderr)


def test_committed_example_report_is_small_and_offline() -> None:
    root = Path(__file__).resolve().parent.parent
    example = root / "reports" / "example.html"
    if not example.exists():
        pytest.skip("reports/example.html not generated (docs/make_report_example.py)")
    page = example.read_text(encoding="utf-8")
    assert example.stat().st_size < 300_000 and "FAIL" in page
    assert "http://" not in page and "https://" not in page
    png = root / "docs" / "report.png"
    assert not png.exists() or png.stat().st_size < 300_000


def test_verdict_sections_in_headless_chromium(tmp_path: Path, chromium: str) -> None:
    """The banner follows the verdict, every rule shows its outcome and origin, changes no
    rule gates are listed under "Not gated", and an untestable row is marked — in a real
    browser, with a hostile rule origin escaped."""
    import numpy as np

    from ftguard.gate import parse_rule, resolve_policy

    legal_b = np.ones(40, bool)
    legal_t = legal_b.copy()
    legal_t[:28] = False
    runs = [binary_run(spec, {("legal", "sentiment"): legal, ("general", "tiny"): tiny,
                              ("general", "knowledge"): know})
            for spec, legal, tiny, know in (
                ("base", legal_b, np.ones(5, bool), flipped_pair(200, 2, 2)[0]),
                ("tuned", legal_t, np.zeros(5, bool), flipped_pair(200, 2, 2)[1]))]
    failing = compare(*runs, resamples=200)
    origin = f"{HOSTILE[1]}gate.yaml:3"
    gated = resolve_policy(fail_on=(parse_rule("general:headline:not-regressed", origin),))
    passing = compare(*runs, gated, resamples=200)  # legal's collapse is significant, not gated
    for name, c in (("fail", failing), ("pass", passing)):
        report = write_report(c, tmp_path / f"{name}.html")
        done = _browser(chromium, tmp_path, report.as_uri(), "--dump-dom")
        assert not _page_problems(done.stderr)
        doc = _parse(done.stdout)
        text = " ".join(" ".join(doc.text).split())
        banner = [a.get("class") for tag, a in doc.tags if tag == "header"]
        assert banner == [f"banner {name}" + (" weak" if name == "pass" else "")]
        assert "underpowered: general/tiny acc: no outcome on n=5 items" in text
        assert "untestable at n=5" in text
        assert not any(tag in ("img", "b", "textarea") for tag, _ in doc.tags)
        if name == "fail":
            assert "FAIL" in text and "*:headline:not-regressed" in text
            assert "failed — fails the gate" in text and "Every gate rule passed" not in text
        else:
            assert "PASS (1 rule(s) not fully checked)" in text
            assert "could not fully check their rows" in text
            assert HOSTILE[1] + "gate.yaml:3" in text  # the origin, as text
            assert "Not gated" in text
            assert "legal/sentiment acc regressed significantly (1 -> 0.3" in text
    shot = tmp_path / "shot.png"
    _browser(chromium, tmp_path, (tmp_path / "pass.html").as_uri(), f"--screenshot={shot}",
             "--window-size=1280,1400")
    assert shot.exists() and shot.stat().st_size > 10_000


SHOTS = "".join(f"Question: example {i}?\nAnswer: yes\n\n" for i in range(4))  # 120 chars


def _run_with_contexts() -> RunRecord:
    base, _ = _runs()
    samples = base.suites[0].tasks[0].samples
    samples[0] = samples[0].model_copy(update={
        "prompt": "Question: mine?\nAnswer:",
        "context": "<|im_start|>user\n" + SHOTS + "Question: mine?\nAnswer:<|im_end|>\n"})
    samples[1] = samples[1].model_copy(update={"prompt": HOSTILE[1],
                                               "context": HOSTILE[0] + HOSTILE[1]})
    return base


def test_run_report_shows_the_exact_input_with_its_opening_folded() -> None:
    page = render_report(_run_with_contexts())
    first = page.split(">knowledge-0<")[1].split("</tr>")[0]
    opening = len("<|im_start|>user\n" + SHOTS)
    assert first.count('<details class="context">') == 1
    assert f"<summary>{opening} characters before the item" in first
    assert "example 3?" in first.split("</details>")[0]  # the few-shot block, folded
    assert first.split("</details>")[1].startswith(
        '<pre class="cell">Question: mine?\nAnswer:&lt;|im_end|&gt;\n</pre>')
    second = page.split(">knowledge-1<")[1].split("</tr>")[0]  # escaped, folded or not
    assert "<script>alert(1)" not in second and "&lt;script&gt;alert(1)" in second
    third = page.split(">knowledge-2<")[1].split("</tr>")[0]  # no context: the prompt alone
    assert "<details" not in third


def test_run_report_folds_in_headless_chromium(tmp_path: Path, chromium: str) -> None:
    report = write_report(_run_with_contexts(), tmp_path / "run.html")
    done = _browser(chromium, tmp_path, report.as_uri(), "--dump-dom")
    assert not _page_problems(done.stderr)
    row = done.stdout.split(">knowledge-0<")[1].split("</tr>")[0]
    assert '<details class="context">' in row and "open" not in row.split("<summary>")[0]
    assert not any(tag == "img" for tag, _ in _parse(done.stdout).tags)  # the hostile one inert


def test_calibration_overlay_in_headless_chromium(tmp_path: Path, chromium: str, run_cli) -> None:
    """The comparison report overlays base and tuned reliability bins per task with ece: in a
    real browser, each series' dots sit at its bins (240 px square, 36 px margin)."""
    import re

    from conftest import MC_ROWS, MC_TASK, suite_yaml, write_jsonl
    from ftguard.record import read_run

    root = tmp_path / "cal"
    (root / "data").mkdir(parents=True)
    (root / "suite.yaml").write_text(suite_yaml("cal", tasks=MC_TASK + "    metrics: [acc, ece]\n"))
    write_jsonl(root / "data" / "mc.jsonl",
                [dict(r, id=f"{r['id']}-{i}") for i in range(3) for r in MC_ROWS])
    for seed in ("1", "2"):
        code, _, err = run_cli("eval", root, "--model", f"fake:{seed}", "--no-progress",
                               "--out", tmp_path / f"{seed}.json")
        assert code == 0, err
    c = compare(read_run(tmp_path / "1.json"), read_run(tmp_path / "2.json"), resamples=200)
    (curve,) = c.calibration
    report = write_report(c, tmp_path / "cal.html")
    done = _browser(chromium, tmp_path, report.as_uri(), "--dump-dom")
    assert not _page_problems(done.stderr)
    dom = done.stdout
    assert "Calibration" in dom and f"base {curve.base_ece:.3f}, tuned {curve.tuned_ece:.3f}" in dom
    svg = dom.split('<svg class="reliability"')[1].split("</svg>")[0]
    for side, bins in (("base", curve.base_bins), ("tuned", curve.tuned_bins)):
        group = svg.split(f'<g class="series {side}">')[1].split("</g>")[0]
        dots = re.findall(r'<circle class="bin" cx="([\d.]+)" cy="([\d.]+)"', group)
        assert len(dots) == len(bins) == 10
        for (cx, cy), (conf, acc, _) in zip(dots, bins):
            assert float(cx) == pytest.approx(36 + 240 * conf, abs=0.06)
            assert float(cy) == pytest.approx(36 + 240 * (1 - acc), abs=0.06)
    assert svg.count("<polyline") == 2
