"""Accepted baselines: the RunRecords a candidate is gated against, with an index.

A baseline folder (``baselines/`` by default) holds one RunRecord per model x suite set and
``index.json`` saying where each came from (model, fingerprint, suite hashes, git commit,
date, ftguard version). :func:`accept` (``ftguard baseline accept RUN.json``) adds or
replaces one, :func:`show` (``ftguard baseline show``) lists them, :func:`update`
(``pytest --ftguard-update-baseline``) stores a run while keeping the suites it did not
evaluate (:func:`merged`), and :class:`Baselines` finds the one that covers the suites being
gated (:func:`find_baseline` for ``ftguard gate``, :func:`find_baselines` per suite for the
pytest plugin), reading each file once. Accepting refuses a run whose suite hashes differ from the suites
on disk (the baseline would be stale the moment it is stored) unless forced. Every write is
atomic: the RunRecord first, then the index.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ftguard.errors import RecordError, UsageError
from ftguard.record import RunRecord, read_run, write_json_atomic, write_run
from ftguard.version import git_revision

INDEX = "index.json"
DEFAULT_DIR = "baselines"


class BaselineEntry(BaseModel):
    """One accepted RunRecord."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    name: str
    """Key of the baseline: by default the model SPEC's last path part (``smollm2-135m-instruct``)."""
    file: str
    """RunRecord file, relative to the baseline folder."""
    model: str
    """Model SPEC of the run."""
    fingerprint: str
    """Model fingerprint of the run."""
    suites: dict[str, str]
    """Suite name -> content hash of the suites the run covers."""
    commit: str | None = None
    """Git commit the run was accepted at, when known."""
    accepted: str
    """UTC time of acceptance (ISO 8601)."""
    ftguard_version: str = ""
    """ftguard version that produced the run."""


class BaselineIndex(BaseModel):
    """``index.json`` of a baseline folder."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    entries: list[BaselineEntry] = Field(default_factory=list)
    """Accepted baselines, one per name."""


def baseline_name(run: RunRecord) -> str:
    """Default name: the model's :func:`~ftguard.models.naming.model_name` (its adapter's or
    model folder's name, else its SPEC's last path part), made file-name safe."""
    from ftguard.models.naming import model_name

    last = model_name(run.model)
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", last).strip("-.") or "baseline"


def load_index(root: Path, runs: dict[str, RunRecord] | None = None) -> BaselineIndex:
    """The folder's index; an index-less folder of RunRecords is indexed on the fly (the
    RunRecords read for it are put in ``runs``, by file name, when given)."""
    path = root / INDEX
    if path.exists() and not path.is_file():
        raise RecordError(f"{path}: is not a file; a baseline folder's {INDEX} is the JSON "
                          "index of its accepted runs.", hint="Remove it (it is rebuilt by "
                                                              "ftguard baseline accept).")
    if not path.exists():
        read = {p.name: read_run(p) for p in (sorted(root.glob("*.json")) if root.is_dir()
                                              else []) if p.is_file()}
        if runs is not None:
            runs.update(read)
        return BaselineIndex(entries=[_entry_for(run, Path(file).stem, file, commit=None,
                                                 indexed=False) for file, run in read.items()])
    try:
        index = BaselineIndex.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError, RecursionError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RecordError(f"{path}: not a baseline index ({text}).",
                          hint="Restore it from version control, or delete it and accept "
                               "the baselines again.") from None
    for i, entry in enumerate(index.entries):
        _entry_file(root, entry, f"{path}: entries[{i}].file")
    return index


def _entry_file(root: Path, entry: BaselineEntry, where: str) -> Path:
    """The RunRecord file of ``entry``: a file directly in ``root`` (symlinks resolved)."""
    hint = ("Each entry's file is a RunRecord in the baseline folder itself; restore "
            f"{INDEX} from version control or accept the baseline again.")
    if Path(entry.file).name != entry.file or entry.file in ("", ".", ".."):
        raise RecordError(f"{where} {entry.file!r} is not a file name in {root}; the index may "
                          "only point at runs inside its own folder.", hint=hint)
    real = (root / entry.file).resolve()
    if real.parent != root.resolve():
        raise RecordError(f"{where} {entry.file!r} resolves to {real}, outside {root}; the index "
                          "may only point at runs inside its own folder.", hint=hint)
    return real


def accept(run: RunRecord, root: Path, *, name: str | None = None, force: bool = False,
           allow_partial: bool = False, commit: str | None = None,
           source: Path | str = "the run") -> BaselineEntry:
    """Store ``run`` as baseline ``name`` (replacing an older one); ``source`` (where it was
    read from) names it in messages. A partial run (:meth:`RunConfig.partial_reason`) is
    refused unless ``allow_partial``: candidates would be gated on its items only."""
    partial = run.config.partial_reason()
    if partial and not allow_partial:
        raise UsageError(
            f"{source}: a partial run ({partial}); as a baseline it would gate candidates "
            "on those items only.",
            hint="Re-run ftguard eval without --limit/--subset to accept the whole suites, or "
                 "pass {--allow-partial} to accept it as it is.", option="allow-partial")
    if not force:
        stale = _stale_suites(run)
        if stale:
            raise UsageError(
                f"{source}: the run's suites differ from the suites on disk "
                f"({'; '.join(stale)}); a baseline of them would not be comparable.",
                hint="Re-run ftguard eval on the current suites, or pass --force to accept it "
                     "anyway.")
    name = name or baseline_name(run)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise UsageError(f"--name {name!r}: use letters, digits, '.', '_' and '-'.")
    root.mkdir(parents=True, exist_ok=True)
    index = load_index(root)
    entry = _entry_for(run, name, f"{name}.json", commit=commit or git_revision())
    write_run(run, root / entry.file)
    index.entries = [e for e in index.entries if e.name != name] + [entry]
    index.entries.sort(key=lambda e: e.name)
    write_json_atomic(index.model_dump(mode="json"), root / INDEX)
    return entry


def unchanged(run: RunRecord, root: Path, *, name: str | None = None) -> BaselineEntry | None:
    """The entry ``name`` (default :func:`baseline_name`) when it already has the run's model
    fingerprint and suite hashes, so accepting ``run`` would change nothing that matters."""
    name = name or baseline_name(run)
    suites = {s.name: s.hash for s in run.suites}
    return next((e for e in load_index(root).entries if e.name == name
                 and e.fingerprint == run.model.fingerprint and e.suites == suites), None)


def update(run: RunRecord, root: Path) -> BaselineEntry | None:
    """Store ``run`` as the baseline ``root``: a RunRecord file (returns None) or the entry
    :func:`baseline_name` of a baseline folder (returns it).

    Suites of the stored baseline that this run did not evaluate are kept when the model is
    the same (same fingerprint), so gating one suite does not drop another's baseline.
    A partial run is stored as it is: the caller warns about it.
    """
    if root.suffix == ".json" or root.is_file():
        write_run(merged(read_run(root) if root.is_file() else None, run), root)
        return None
    name = baseline_name(run)
    found = Baselines(root).find([], name=name) if root.is_dir() else None
    return accept(merged(found[0] if found else None, run), root, name=name, force=True,
                  allow_partial=True)  # the caller says so (the pytest plugin warns)


def merged(old: RunRecord | None, run: RunRecord) -> RunRecord:
    """``run`` plus the suites of ``old`` it lacks, when both are of the same model."""
    if old is None or old.model.fingerprint != run.model.fingerprint:
        return run
    names = {s.name for s in run.suites}
    return run.model_copy(update={"suites": run.suites + [s for s in old.suites
                                                          if s.name not in names]})


def only(run: RunRecord, names: list[str],
         tasks: set[tuple[str, str]] | None = None) -> RunRecord:
    """``run`` with only the suites ``names`` (and of them only the ``(suite, task)`` pairs
    ``tasks``, when given)."""
    suites = [s for s in run.suites if s.name in names]
    if tasks is not None:
        suites = [s.model_copy(update={"tasks": [t for t in s.tasks if (s.name, t.name) in tasks]})
                  for s in suites]
    return run.model_copy(update={"suites": suites})


class Baselines:
    """The baselines at ``root`` (a folder, or a RunRecord file that is then the baseline)
    for one lookup: the index and each RunRecord are read at most once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._runs: dict[str, RunRecord] = {}
        if root.is_file():
            run = self._runs[root.name] = read_run(root)
            self.entries = [_entry_for(run, root.stem, root.name, commit=None, indexed=False)]
        else:
            self.entries = load_index(root, self._runs).entries

    def run(self, entry: BaselineEntry) -> RunRecord:
        """The RunRecord of ``entry``."""
        if self.root.is_file():
            return self._runs[self.root.name]
        path = _entry_file(self.root, entry, f"{self.root / INDEX}: {entry.name}")
        if entry.file not in self._runs:
            self._runs[entry.file] = read_run(path)
        return self._runs[entry.file]

    def find(self, suites: dict[str, str] | list[str], *,
             name: str | None = None) -> tuple[RunRecord, BaselineEntry] | None:
        """The baseline covering ``suites`` (names, or names -> hashes that must match).

        A RunRecord file is the baseline whatever the suites. With ``name`` only that entry
        is considered; otherwise the most recently accepted entry that covers every suite
        wins.
        """
        if self.root.is_file():
            return self.run(self.entries[0]), self.entries[0]
        wanted = dict.fromkeys(suites, "") if isinstance(suites, list) else dict(suites)
        candidates = [e for e in self.entries
                      if (name is None or e.name == name)
                      and all(s in e.suites and (not h or e.suites[s] == h)
                              for s, h in wanted.items())]
        if not candidates:
            return None
        entry = max(candidates, key=lambda e: e.accepted)
        return self.run(entry), entry


def find_baseline(root: Path, suites: dict[str, str] | list[str], *,
                  name: str | None = None) -> tuple[RunRecord, BaselineEntry] | None:
    """The baseline covering ``suites``: :meth:`Baselines.find` of one lookup at ``root``."""
    return Baselines(root).find(suites, name=name)


def find_baselines(root: Path, run: RunRecord
                   ) -> tuple[list[tuple[RunRecord, BaselineEntry, list[str]]], list[str]]:
    """Group the run's suites by the baseline that covers them.

    One entry covering every suite (with matching hashes) is preferred, so the comparison and
    its multiple-testing adjustment are those of ``ftguard compare``. Otherwise each suite
    gets the newest entry with its hash, else the newest with its name (then compare lists
    what differs). Returns ``[(baseline run, its entry, suite names)]`` and the suites that
    have no baseline.
    """
    hashes = {s.name: s.hash for s in run.suites}
    if not hashes:
        return [], []
    baselines = Baselines(root)
    hit = baselines.find(hashes)
    if hit is not None and hashes.keys() <= {s.name for s in hit[0].suites}:
        return [(hit[0], hit[1], list(hashes))], []
    groups: dict[tuple[str, bool], tuple[RunRecord, BaselineEntry, list[str]]] = {}
    missing: list[str] = []
    for name, digest in hashes.items():
        found = baselines.find({name: digest}) or baselines.find([name])
        if found is None or name not in {s.name for s in found[0].suites}:
            missing.append(name)
            continue
        base, entry = found
        key = (entry.file, entry.suites.get(name) == digest)
        groups.setdefault(key, (base, entry, []))[2].append(name)
    return list(groups.values()), missing


def show(root: Path) -> str:
    """The index as a small text table."""
    entries = load_index(root).entries
    if not entries:
        return f"no baselines in {root} (add one with: ftguard baseline accept RUN.json)"
    lines = [f"{'name':<28} {'model':<32} {'suites':<36} {'commit':<10} accepted"]
    for e in entries:
        suites = ", ".join(f"{s}@{h.removeprefix('sha256:')[:8]}" for s, h in e.suites.items())
        lines.append(f"{e.name:<28} {e.model[-32:]:<32} {suites:<36} "
                     f"{(e.commit or '-')[:8]:<10} {e.accepted}")
    return "\n".join(lines)


def _entry_for(run: RunRecord, name: str, file: str, *, commit: str | None,
               indexed: bool = True) -> BaselineEntry:
    # A RunRecord outside the index was never accepted: date it by its creation, not now.
    accepted = (datetime.now(timezone.utc).isoformat(timespec="seconds") if indexed
                else run.created or "")
    return BaselineEntry(name=name, file=file, model=run.model.spec,
                         fingerprint=run.model.fingerprint,
                         suites={s.name: s.hash for s in run.suites}, commit=commit,
                         accepted=accepted, ftguard_version=run.ftguard_version)


def _stale_suites(run: RunRecord) -> list[str]:
    """Suites of ``run`` whose folder is on disk with different content."""
    from ftguard.errors import FtguardError
    from ftguard.suite import load_suite

    stale = []
    for suite in run.suites:
        if not suite.path or not (Path(suite.path) / "suite.yaml").is_file():
            continue
        try:
            current = load_suite(Path(suite.path))
        except FtguardError:
            continue
        if current.hash != suite.hash:
            stale.append(f"{suite.name}: run {suite.hash[:15]}, disk {current.hash[:15]}")
    return stale
