"""Suites: the declarative description of an evaluation (suite.yaml + JSONL data)."""

from ftguard.suite.instances import Instance
from ftguard.suite.loader import Suite, Task, find_suites, load_suite, validate_paths
from ftguard.suite.schema import SuiteSpec, TaskSpec

__all__ = ["Instance", "Suite", "SuiteSpec", "Task", "TaskSpec", "find_suites", "load_suite",
           "validate_paths"]
