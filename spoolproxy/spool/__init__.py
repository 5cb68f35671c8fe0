"""Durable job spool: job records (LMDB) and document files, crash recovery."""
from .errors import (CorruptRecord, DocumentMissing, DocumentTooLarge, JobNotFound, SpoolError,
                     SpoolFull)
from .job import Delivery, Document, Job
from .store import JobStore

__all__ = [
    "JobStore", "Job", "Document", "Delivery",
    "SpoolError", "SpoolFull", "DocumentTooLarge", "DocumentMissing", "JobNotFound",
    "CorruptRecord",
]
