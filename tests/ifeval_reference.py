"""lm-eval's own IFEval checkers, loaded for the parity tests without lm-eval's task registry.

The four files of ``lm_eval/tasks/ifeval`` are executed from the installed package under their
own names (``lm_eval.tasks.ifeval.*``) and ``sys.modules`` is restored afterwards, so that
nothing else in the test session sees them. Three imports lm-eval's files need cannot be had
offline here and are stood in for while loading:

- ``langdetect``: a stand-in whose ``detect`` answers "en", so lm-eval's change_case checks
  reduce to their case test (ftguard checks the case only; language detection is not
  compared, and ``language:response_language`` is not tested at all);
- ``immutabledict``: ``dict`` (it only wraps lm-eval's table of language codes);
- ``nltk.download``: a no-op (lm-eval asks for punkt at import; the checkers compared here do
  not use punkt: ``count_words`` is NLTK's ``RegexpTokenizer``, the real one).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

_FILES = ("instructions_util", "instructions", "instructions_registry", "utils")
_PACKAGE = "lm_eval.tasks.ifeval"


def _langdetect_stand_in() -> types.ModuleType:
    module = types.ModuleType("langdetect")

    class LangDetectException(Exception):
        pass

    module.LangDetectException = LangDetectException  # type: ignore[attr-defined]
    module.detect = lambda text: "en"  # type: ignore[attr-defined]
    return module


def load_lmeval_ifeval() -> types.SimpleNamespace:
    """lm-eval's ``instructions``, ``instructions_registry`` and ``utils`` modules."""
    import nltk

    spec = importlib.util.find_spec("lm_eval")
    assert spec is not None and spec.origin is not None, "lm-eval is not installed"
    folder = Path(spec.origin).parent / "tasks" / "ifeval"
    names = [_PACKAGE, *(f"{_PACKAGE}.{name}" for name in _FILES), "langdetect",
             "immutabledict"]
    saved = {name: sys.modules.get(name) for name in names}
    download = nltk.download
    loaded: dict[str, types.ModuleType] = {}
    try:
        package = types.ModuleType(_PACKAGE)
        package.__path__ = [str(folder)]  # type: ignore[attr-defined]
        sys.modules[_PACKAGE] = package
        sys.modules["langdetect"] = _langdetect_stand_in()
        if importlib.util.find_spec("immutabledict") is None:
            stand_in = types.ModuleType("immutabledict")
            stand_in.immutabledict = dict  # type: ignore[attr-defined]
            sys.modules["immutabledict"] = stand_in
        nltk.download = lambda *args, **kwargs: False
        for name in _FILES:
            file_spec = importlib.util.spec_from_file_location(f"{_PACKAGE}.{name}",
                                                               folder / f"{name}.py")
            assert file_spec is not None and file_spec.loader is not None
            module = importlib.util.module_from_spec(file_spec)
            sys.modules[file_spec.name] = module
            file_spec.loader.exec_module(module)
            setattr(package, name, module)
            loaded[name] = module
    finally:
        nltk.download = download
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return types.SimpleNamespace(**loaded)
