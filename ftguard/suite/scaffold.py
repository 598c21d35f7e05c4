"""``ftguard init``: a new suite folder that validates and runs as written.

One example task per asked kind, a few JSONL items each, a ``gate:`` section, and a README
that explains every key the suite.yaml uses (and the optional ones it leaves out).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ftguard.errors import UsageError

KINDS = ("choice", "classify", "generate", "perplexity")
"""The kinds ``init`` can write an example of, in the order they are written."""

_CAPITALS = [("France", "Paris", ["Paris", "Lyon", "Nice", "Lille"]),
             ("Japan", "Tokyo", ["Osaka", "Tokyo", "Kyoto", "Nagoya"]),
             ("Italy", "Rome", ["Milan", "Naples", "Rome", "Turin"]),
             ("Canada", "Ottawa", ["Toronto", "Vancouver", "Montreal", "Ottawa"]),
             ("Kenya", "Nairobi", ["Nairobi", "Mombasa", "Kisumu", "Nakuru"]),
             ("Peru", "Lima", ["Cusco", "Arequipa", "Lima", "Trujillo"])]
_REVIEWS = [("The battery lasts two days and the screen is bright.", "positive"),
            ("It broke after a week and support never answered.", "negative"),
            ("Setup took a minute; it just works.", "positive"),
            ("The strap smells of glue and the clasp is loose.", "negative"),
            ("Best purchase this year, would buy again.", "positive"),
            ("Slow, noisy and more expensive than promised.", "negative")]
_QUESTIONS = [("How many legs does a spider have?", ["eight", "8"]),
              ("What is the chemical symbol for gold?", ["Au"]),
              ("What gas do plants take in from the air?", ["carbon dioxide", "CO2"]),
              ("How many minutes are in an hour?", ["sixty", "60"]),
              ("What is the freezing point of water in Celsius?", ["zero", "0", "0 degrees"]),
              ("Which planet is closest to the sun?", ["Mercury"])]
_TEXTS = ["Rivers carry water from high ground to the sea, shaping valleys as they go.",
          "A contract is an agreement that the law will enforce between its parties.",
          "Bread rises because yeast turns sugar into carbon dioxide and alcohol.",
          "The library opens at nine on weekdays and at ten on Saturdays."]

_TASKS = {
    "choice": ('''\
  - name: capitals
    kind: choice
    description: Capital cities, multiple choice scored by log-probability.
    data: data/capitals.jsonl
    prompt: "Question: What is the capital of {{ country }}?\\nAnswer:"
    choices_field: options
    target_index: "{{ answer }}"
    metrics: [acc, acc_norm]
''', [{"id": f"cap-{i}", "country": c, "options": o, "answer": o.index(a)}
      for i, (c, a, o) in enumerate(_CAPITALS, 1)]),
    "classify": ('''\
  - name: sentiment
    kind: classify
    description: Product review sentiment, one of a fixed label set.
    data: data/sentiment.jsonl
    prompt: "Review: {{ text }}\\nThe sentiment of this review is"
    target: "{{ label }}"
    labels: [positive, negative]
    metrics: [accuracy, macro_f1]
''', [{"id": f"rev-{i}", "text": t, "label": lab} for i, (t, lab) in enumerate(_REVIEWS, 1)]),
    "generate": ('''\
  - name: short_answers
    kind: generate
    description: Short factual answers, exact match and token F1 against the references.
    data: data/short_answers.jsonl
    prompt: "Question: {{ question }}\\nAnswer:"
    target_field: answers
    few_shot: {k: 2, seed: 1234}
    generation: {max_new_tokens: 16, stop: ["\\n"]}
    metrics: [exact_match, f1]
''', [{"id": f"qa-{i}", "question": q, "answers": a} for i, (q, a) in enumerate(_QUESTIONS, 1)]),
    "perplexity": ('''\
  - name: prose
    kind: perplexity
    description: Plain English prose; lower perplexity means the text is less surprising.
    data: data/prose.jsonl
    prompt: "{{ text }}"
    metrics: [perplexity, bits_per_byte]
''', [{"id": f"doc-{i}", "text": t} for i, t in enumerate(_TEXTS, 1)]),
}

_DATA = {kind: re.search(r"^    data: (\S+)$", text, re.MULTILINE).group(1)  # type: ignore[union-attr]
         for kind, (text, _) in _TASKS.items()}
"""Each example task's data file, as its suite.yaml entry names it."""

_README = """\
# {name}

A suite written by `ftguard init`. Check it, run it on the dry-run model, then on yours:

```bash
ftguard suites validate {name}
ftguard eval {name} --model fake --out fake.json          # no weights: checks the wiring
ftguard eval {name} --out base.json                       # the embedded default model
ftguard suites show {name} --render 2                      # the prompts as the model sees them
```

Replace the example items in `data/` with yours (one JSON object per line, each with a
unique `id`), keep or delete tasks, and bump `version` whenever items or prompts change.

## The keys in suite.yaml

Suite keys:

- `name`: the suite's name in records, reports and gate rules (letters, digits, `_ - .`).
- `version`: bump it when items or prompts change; runs of different versions are not compared.
- `role`: `target` (the skill the fine-tune should improve) or `general` (ability it must not
  lose). The default gate and the alignment tax read it.
- `description`: one line on what the suite measures.
- `tasks`: the tasks (below).
- `gate`: rules `[SELECTOR:]METRIC:CONDITION` used by `ftguard compare` when it gets no
  `--fail-on`/`--policy`. Selectors are relative to this suite: `headline:not-regressed` means
  every task's first metric must not regress significantly; `TASK:METRIC:>=0.7` is a floor.
  Conditions: `not-regressed`, `improved`, `noninferior(2%)`, `5%` (max drop), `>=X`, `<=X`.

Task keys (every task):

- `name`: unique within the suite; `kind`: `choice`, `classify`, `generate` or `perplexity`.
- `description`: one line. `data`: the JSONL file, relative to this folder.
- `prompt`: a Jinja2 template over the item's fields (`{{{{ field }}}}`), rendered in a sandbox;
  an undefined field is an error. For `perplexity` it is the text that is scored.
- `metrics`: metric names; the first is the task's headline. `ftguard suites schema` and
  README's Metrics section list them per kind.

By kind:

- `choice`: `choices_field` (the item field with the list of choices) or `choices` (a list of
  templates); `target_index` (template of the 0-based correct index) or `target` (the correct
  choice's text). `acc` takes the choice of highest summed log-probability, `acc_norm` divides
  by the choice's length in characters.
- `classify`: `labels` (the fixed label set, at least two) and `target` (template of the
  item's label) or `target_index`.
- `generate`: `target_field` (a string or list of reference answers) or `target` (template);
  `generation`: `max_new_tokens` and `stop` strings (greedy decoding); `few_shot`: `k`
  examples per prompt drawn with `seed` from this task's other items (never the item asked),
  or from a separate `data` file; `separator` between them.
- `perplexity`: no target; `max_length` sets the window in tokens (default: the model's).

Optional keys not used here: `id_field` (default `id`), `target_delimiter` (default a
space, placed between prompt and answer), `chat_template: true` (wrap prompts in the model's
chat template; few-shot examples become turns), the suite's `train:`/`replay:` (instruction
data for `ftguard train`), and `kind: lm_eval` tasks (`lm_eval_task`, `lm_eval_include`,
`num_fewshot`). `suite.schema.json` is the JSON Schema of every key with its description (what
`ftguard suites schema` prints); the first line of suite.yaml points editors with the YAML
language server at it for completion. Refresh it after upgrading ftguard with
`ftguard suites schema -o {name}/suite.schema.json`.
"""


def parse_kinds(values: list[str] | None) -> list[str]:
    """The kinds asked by ``--kind`` (repeatable, comma lists allowed), in ``KINDS`` order;
    every kind when none is asked."""
    asked = [k.strip() for v in values or [] for k in v.split(",") if k.strip()]
    unknown = [k for k in asked if k not in KINDS]
    if unknown:
        raise UsageError(f"--kind {unknown[0]!r} is not a task kind ftguard init writes.",
                         hint=f"Use one or more of {', '.join(KINDS)} (e.g. --kind choice,generate).")
    return [k for k in KINDS if k in asked] or list(KINDS)


def write_suite(folder: Path, kinds: list[str]) -> list[Path]:
    """Write the suite into ``folder`` (new or empty); return the files written. A copy of the
    JSON Schema goes beside suite.yaml, whose first line points editors to it: the folder can
    be committed and moved, and completes in a teammate's editor too."""
    from ftguard.atomic import write_text_atomic
    from ftguard.suite.json_schema import SCHEMA_FILENAME, schema_comment, schema_text

    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        what = "a file" if not folder.is_dir() else "a folder that is not empty"
        raise UsageError(f"{folder} is {what}; ftguard init writes a new suite and never "
                         "overwrites.", hint="Give a new folder name (ftguard init NAME).")
    name = folder.name
    if not name or not name[0].isalnum() or not all(c.isalnum() or c in "_.-" for c in name):
        raise UsageError(f"the suite name {name!r} (the folder's name) may only use letters, "
                         "digits, '_', '-' and '.', starting with a letter or digit.",
                         hint="e.g. ftguard init suites/my_task")
    yaml = (schema_comment(SCHEMA_FILENAME)
            + f"# {name}: written by ftguard init; every key is explained in README.md.\n"
            + f'name: {name}\nversion: "1"\nrole: target\n'
            + "description: Example tasks to replace with your own items.\ntasks:\n"
            + "\n".join(_TASKS[k][0] for k in kinds)
            + "gate:\n  - headline:not-regressed\n")
    files = {folder / "suite.yaml": yaml, folder / "README.md": _README.format(name=name),
             folder / SCHEMA_FILENAME: schema_text()}
    for kind in kinds:
        _, rows = _TASKS[kind]
        files[folder / _DATA[kind]] = "".join(json.dumps(r) + "\n" for r in rows)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(text, path)
    return list(files)
