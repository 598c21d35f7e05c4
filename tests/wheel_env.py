"""ftguard built as a wheel and installed into a fresh virtualenv, as a user gets it.

Offline: the wheel is built from a copy of the package sources with the test interpreter's
pip (``--no-build-isolation``, so setuptools comes from there), installed with
``pip --python NEWVENV/bin/python install --no-deps --no-index``, and the new venv gets the
dependencies through a ``.pth`` file naming the test interpreter's site-packages. That
site-packages holds an editable ftguard too, but a path named in a ``.pth`` file is only
appended to ``sys.path`` (its own ``.pth`` files, the editable finder among them, are not
run), so ``import ftguard`` finds the wheel's copy: :func:`build_wheel_env` checks it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_SOURCES = ("pyproject.toml", "README.md", "ftguard")
"""What the wheel is built from (the package, its metadata and the readme it names)."""


@dataclass(frozen=True)
class WheelEnv:
    """A venv with ftguard installed from its wheel."""

    wheel: Path
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def environ(self, home: Path, **extra: str) -> dict[str, str]:
        """The environment of a user of this venv: its bin/ first on PATH, no PYTHONPATH
        (which would bring the checkout back), offline, caches under ``home``."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTEST_ADDOPTS")
               and not k.startswith("PYTEST_XDIST")}
        env.update(PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(self.venv),
                   FTGUARD_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   HF_DATASETS_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1")
        env.update(extra)
        return env

    def run(self, args: Sequence[str | Path], cwd: Path, home: Path,
            timeout: float = 600, **extra: str) -> subprocess.CompletedProcess[str]:
        """Run ``args`` (``ftguard ...``, ``python -m pytest ...``) as that user, from ``cwd``."""
        return subprocess.run([str(a) for a in args], cwd=cwd, env=self.environ(home, **extra),
                              capture_output=True, text=True, timeout=timeout, check=False)


def build_wheel_env(repo: Path, work: Path) -> WheelEnv:
    """Build the wheel of ``repo`` and install it into a new venv under ``work``."""
    source, dist, venv = work / "src", work / "dist", work / "venv"
    source.mkdir(parents=True)
    for name in _SOURCES:
        if (repo / name).is_dir():
            shutil.copytree(repo / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(repo / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _check([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", dist, source], work)
    wheels = sorted(dist.glob("ftguard-*.whl"))
    assert len(wheels) == 1, f"expected one ftguard wheel in {dist}, found {wheels}"
    _check([sys.executable, "-m", "venv", "--without-pip", venv], work)
    env = WheelEnv(wheels[0], venv)
    _check([*pip, "--python", env.python, "install", "--no-deps", "--no-index", wheels[0]], work)
    site = Path(_check([env.python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                       work).strip())
    (site / "zz_ftguard_test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    where = _check([env.python, "-c", "import ftguard; print(ftguard.__file__)"], work,
                   env=env.environ(work / "home")).strip()
    assert Path(where).is_relative_to(venv), f"ftguard imported from {where}, not the wheel"
    return env


def _check(args: Sequence[str | Path], cwd: Path, env: dict[str, str] | None = None) -> str:
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env or base, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout
