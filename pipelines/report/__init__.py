"""Evaluation reports: the report dict's contract, report.json, the HTML page and diffs.

`pipelines.report.document` holds the contract the evaluation pipeline fills.
"""

from pipelines.report.diff import diff_reports, format_diff
from pipelines.report.document import (
    REPORT_HTML,
    REPORT_JSON,
    check_report,
    is_unavailable,
    unavailable,
    validate_report,
)
from pipelines.report.files import read_report, report_json_path, report_to_json, write_report
from pipelines.report.page import CONTENT_SECURITY_POLICY, render_html

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "REPORT_HTML",
    "REPORT_JSON",
    "check_report",
    "diff_reports",
    "format_diff",
    "is_unavailable",
    "read_report",
    "render_html",
    "report_json_path",
    "report_to_json",
    "unavailable",
    "validate_report",
    "write_report",
]
