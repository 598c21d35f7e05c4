"""ftguard: gate a fine-tuned language model against its base.

The public API; heavy libraries (torch, transformers, peft) are imported only when a model
is loaded.
"""

from ftguard.api import evaluate, load_suites
from ftguard.engine.runner import RunSettings
from ftguard.errors import FtguardError
from ftguard.models.load import LoadOptions
from ftguard.record import RunRecord, read_run, write_run

__all__ = ["FtguardError", "LoadOptions", "RunRecord", "RunSettings", "evaluate", "load_suites",
           "read_run", "write_run"]
