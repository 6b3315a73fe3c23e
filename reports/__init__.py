"""Reports of a run dir: QuantStats tear sheets, forecast plots and index.html. Never trains or trades."""

from reports.build import build_reports
from reports.errors import ReportError

__all__ = ["ReportError", "build_reports"]
