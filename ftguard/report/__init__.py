"""Self-contained HTML gate report of a Comparison or a RunRecord (``ftguard report``)."""

from ftguard.report.render import render_report, write_report

__all__ = ["render_report", "write_report"]
