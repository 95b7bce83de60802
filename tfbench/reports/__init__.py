"""Reports: published numbers as data, result tables (Markdown, LaTeX, CSV) and a self-contained HTML page."""

from tfbench.reports.published import Published, PublishedDataError, load_published
from tfbench.reports.tables import ReportTable, build_table, render

__all__ = ["Published", "PublishedDataError", "ReportTable", "build_table", "load_published", "render"]
