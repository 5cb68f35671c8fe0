"""Site <-> primary: the snapshot and change feed, heartbeats and offline detection,
the offline policies, and the journal replayed exactly once (see site.py,
primary.py, journal.py)."""
from .primary import Primary, Sites, SyncError
from .site import Site, SiteKeyError

__all__ = ["Primary", "Site", "Sites", "SiteKeyError", "SyncError"]
