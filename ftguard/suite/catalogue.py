"""What ``ftguard suites list`` shows: one entry per suite found, loaded or not."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ftguard.errors import Problem, SuiteError
from ftguard.suite.loader import SUITE_FILE, find_suites, load_suite


@dataclass(frozen=True)
class SuiteEntry:
    """A suite as listed: its summary, or the problems that kept it from loading."""

    path: Path
    shipped: bool
    name: str = ""
    role: str = ""
    version: str = ""
    tasks: int = 0
    kinds: tuple[str, ...] = ()
    items: int = 0
    headlines: tuple[str, ...] = ()
    """``task:metric`` of each task's headline (first) metric."""
    problems: tuple[Problem, ...] = ()

    def row(self) -> dict[str, object]:
        """The entry as a table row (for text, markdown, JSON and CSV)."""
        return {"suite": self.name or self.path.name, "role": self.role, "version": self.version,
                "tasks": self.tasks, "kinds": list(self.kinds), "items": self.items,
                "headline": list(self.headlines), "shipped": self.shipped,
                "path": str(self.path),
                "problems": [str(p) for p in self.problems]}


def catalogue(paths: list[Path], *, shipped: bool = True) -> list[SuiteEntry]:
    """The shipped suites (unless ``shipped=False``) then every suite under ``paths``, each
    once; a path that holds no suite raises SuiteError."""
    from ftguard.suite.shipped import shipped_root

    roots: dict[Path, bool] = {}
    if shipped:
        for root in sorted(p.parent.resolve() for p in shipped_root().rglob(SUITE_FILE)):
            roots[root] = True
    for root in find_suites(paths) if paths else []:
        roots.setdefault(root.resolve(), False)
    return [_entry(root, is_shipped) for root, is_shipped in roots.items()]


def _entry(root: Path, shipped: bool) -> SuiteEntry:
    try:
        suite = load_suite(root)
    except SuiteError as exc:
        return SuiteEntry(root, shipped, problems=tuple(exc.problems))
    spec = suite.spec
    return SuiteEntry(
        root, shipped, name=suite.name, role=spec.role, version=spec.version,
        tasks=len(suite.tasks), kinds=tuple(dict.fromkeys(t.spec.kind for t in suite.tasks)),
        items=sum(len(t.instances) for t in suite.tasks),
        headlines=tuple(f"{t.name}:{t.spec.metric_names[0]}" if t.spec.metric_names
                        else f"{t.name}:(lm-eval's)" for t in suite.tasks))
