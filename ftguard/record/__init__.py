"""Records: the RunRecord (what one evaluation of one model on some suites produced) and the
Comparison (base vs tuned, and the gate verdict), typed pydantic models with symmetric
readers and atomic writers.

- :mod:`~ftguard.record.run`: the RunRecord and its parts; :mod:`~ftguard.record.config`: its
  ``config`` and ``environment``
- :mod:`~ftguard.record.comparison`: the Comparison and its parts
- :mod:`~ftguard.record.check`: the checks every RunRecord passes, written or read
- :mod:`~ftguard.record.read` / :mod:`~ftguard.record.write`: files in and out
"""

from ftguard.record.check import MAX_DEPTH, check_run
from ftguard.record.comparison import (
    AggregateChange,
    CalibrationCurve,
    Comparison,
    ComparisonRow,
    Flip,
    RuleResult,
)
from ftguard.record.config import OpenSection, RunConfig, RunEnvironment
from ftguard.record.read import load_json, read_comparison, read_record, read_run, validation_error
from ftguard.record.run import (
    SCHEMA_VERSION,
    GenerationHealth,
    MetricResult,
    ModelInfo,
    RecordModel,
    RunRecord,
    SampleResult,
    SkippedTask,
    SuiteResult,
    TaskResult,
    target_score,
)
from ftguard.record.write import write_comparison, write_json_atomic, write_run

__all__ = [
    "MAX_DEPTH", "SCHEMA_VERSION", "AggregateChange", "CalibrationCurve", "Comparison",
    "ComparisonRow", "Flip",
    "GenerationHealth", "MetricResult", "ModelInfo", "OpenSection", "RecordModel",
    "RuleResult", "RunConfig", "RunEnvironment", "RunRecord", "SampleResult", "SkippedTask",
    "SuiteResult",
    "TaskResult", "check_run", "load_json", "read_comparison", "read_record", "read_run",
    "target_score", "validation_error", "write_comparison", "write_json_atomic", "write_run",
]
