"""Filters, restrictions and conversions per queue (filters.py, pure), and the
job-path stage that applies them with the cost model and the credit check
(admission.py; import it from there: it needs the config, which needs filters)."""
from .filters import Decision, Facts, FilterSettings, evaluate

__all__ = ["Decision", "Facts", "FilterSettings", "evaluate"]
