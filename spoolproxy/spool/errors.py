"""Typed errors of the job spool.

Each error says what happened to which resource; ``ipp_status`` is the IPP status
code a server should answer with (RFC 8011 §13.1), so that the protocol layers need
no table of their own.
"""
from __future__ import annotations

from ..ipp.model import Status


class SpoolError(Exception):
    """Something went wrong storing or reading a job or its documents."""

    ipp_status: Status = Status.INTERNAL_ERROR


class SpoolFull(SpoolError):
    """No room for the document. Raised as such when the spool file system is out of
    space (ENOSPC/EDQUOT: transient, ``ipp_status`` temporary-error); its subclass
    :class:`DocumentTooLarge` when the document exceeds the configured limit
    (``ipp_status`` request-entity-too-large). Answer with ``e.ipp_status``."""

    ipp_status = Status.TEMPORARY_ERROR


class DocumentTooLarge(SpoolFull):
    """The document is larger than the configured limit (``max_bytes``)."""

    ipp_status = Status.REQUEST_ENTITY_TOO_LARGE

    def __init__(self, limit: int):
        super().__init__(f"document is larger than the limit of {limit} bytes")
        self.limit = limit


class DocumentMissing(SpoolError):
    """A job's spool file is gone (removed behind the node's back, or never made it
    to disk): the job cannot be printed."""

    ipp_status = Status.DOCUMENT_ACCESS_ERROR

    def __init__(self, name: str):
        super().__init__(f"spool file {name} is missing")
        self.name = name


class JobNotFound(SpoolError):
    """No job with that id is in the store (never created, deleted or purged)."""

    ipp_status = Status.NOT_FOUND

    def __init__(self, job_id: int):
        super().__init__(f"job {job_id} is not in the spool")
        self.job_id = job_id


class CorruptRecord(SpoolError):
    """A job record in the database cannot be decoded (wrong schema, bad data)."""
