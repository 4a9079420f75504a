"""One self-contained HTML report of a fitted topic model (``etm report``, ``TopicModel.report``).

The page holds every script and style inline (plotly's bundle, pyLDAvis's d3
and LDAvis), so it opens from disk and makes no network request. See
:func:`write_report` for what it shows and :mod:`etm.offline` for the
offline pyLDAvis page that ``export_pyldavis`` writes.
"""

from etm.report.build import build_report, write_report

__all__ = ["build_report", "write_report"]
