"""TOML configuration -> validated, frozen settings.

Every error names the file, the key and the problem; unknown keys are errors.
``spoolproxy serve`` with no file uses the embedded defaults: a standalone node with
one direct queue "demo" in front of a folder printer inside the state directory.

Keys in messages are written the way the TOML file spells them
(``queues.demo.printer``, ``queues."floor1.colour".mode``), one line per problem::

    site.toml: ipp.port: must be less than or equal to 65535 (got 70000)
    site.toml: queues.demo.colour: unknown key
"""
from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .ledger.cost import CostSettings
from .policy.filters import FilterSettings

PRINTER_SCHEMES = ("ipp", "ipps", "http", "socket", "lpd", "folder")
ENV_CONFIG = "SPOOLPROXY_CONFIG"  # default config file of the `spoolproxy` command
# names inside the state directory that belong to the node itself
RESERVED_STATE_NAMES = ("db", "spool")


class ConfigError(Exception):
    """The configuration is unusable; the message names the file and key."""


class _KeyError(ValueError):
    """A whole-model check that knows which key is wrong (loc is relative to the model)."""

    def __init__(self, key: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.key = key


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeSettings(_Section):
    name: str = "spoolproxy"
    role: Literal["standalone", "primary", "site"] = "standalone"
    state_dir: Path = Path("spoolproxy-state")
    job_history: float = Field(86400.0, ge=0, description="seconds a finished job is kept")
    fsync: bool = True
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @field_validator("state_dir")
    @classmethod
    def _state_dir(cls, v: Path) -> Path:
        if str(v) in ("", "."):
            # "." would make the current directory the node's state (removing it resets the node)
            raise ValueError("must name a directory of its own, e.g. spoolproxy-state")
        return v


class IppSettings(_Section):
    listen: str = "0.0.0.0"
    port: int = Field(8631, ge=0, le=65535)
    # host name put in the URIs the node hands out; default: the name the client used
    hostname: str | None = None
    # an IPP attribute section decodes to ~40x its size in Python objects at worst; a
    # real job's is a few KiB, so 256 KiB bounds every connection's memory
    max_header_bytes: int = Field(256 << 10, ge=4096, description="largest IPP attribute section")
    max_job_bytes: int = Field(0, ge=0, description="largest document, 0 = no limit")
    idle_timeout: float = Field(60.0, gt=0, description="seconds a connection may stay silent")
    # schemes Print-URI/Send-URI may fetch a document-uri from. Off by default: any client
    # could make the node fetch internal addresses (its own admin API) and print the result
    document_uri_schemes: tuple[Literal["ftp", "http", "https"], ...] = ()

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        if not v or any(c.isspace() or c in "/[]" for c in v):
            raise ValueError("must be an IP address or host name, e.g. 0.0.0.0, :: or 127.0.0.1")
        return v

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, v: str | None) -> str | None:
        if v is not None and (not v or any(c.isspace() or c in "/@?#" for c in v)):
            raise ValueError("must be a bare host name, e.g. print.example.com (no scheme or path)")
        return v


class LpdSettings(_Section):
    """The LPD (RFC 1179) listener: the same queues as IPP, for clients that print over LPD."""

    enabled: bool = True
    listen: str = "0.0.0.0"
    port: int = Field(8515, ge=0, le=65535)
    idle_timeout: float = Field(60.0, gt=0, description="seconds a connection may stay silent")
    max_control_bytes: int = Field(64 << 10, ge=1024, le=16 << 20, description="largest control file")
    # LPD has no authentication: a remove command names its user (the "agent") and may remove
    # only that user's jobs; these agents may remove anyone's (e.g. a print server's "root")
    operators: list[str] = Field(default_factory=list, description="agents that may remove anyone's jobs")

    _listen = field_validator("listen")(IppSettings._listen.__func__)


class WebSettings(_Section):
    """The web server (ASGI on hypercorn): admin API, MFD/release API, release page."""

    enabled: bool = True
    listen: str = "0.0.0.0"
    port: int = Field(8632, ge=0, le=65535)
    # bearer token of the admin API; None: a random one kept in STATE_DIR/admin-token (0600)
    admin_token: str | None = Field(None, repr=False)
    # TLS (https): both or neither, PEM files
    certfile: Path | None = None
    keyfile: Path | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        return IppSettings._listen(v)

    @field_validator("admin_token")
    @classmethod
    def _admin_token(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if len(v) < 16 or not all(c.isascii() and (c.isalnum() or c in "-._~+/=") for c in v):
            raise ValueError("must be at least 16 characters of letters, digits and -._~+/= "
                             "(leave it out and the node makes one in STATE_DIR/admin-token)")
        return v

    @model_validator(mode="after")
    def _tls_pair(self) -> "WebSettings":
        if (self.certfile is None) != (self.keyfile is None):
            missing = "keyfile" if self.keyfile is None else "certfile"
            raise _KeyError((missing,), "TLS needs both certfile and keyfile (or neither, for plain http)")
        return self


class LedgerSettings(_Section):
    """Money and users (node-wide). Amounts are integers in minor units (cents)."""

    currency: str = Field("", max_length=8, description="symbol shown with amounts, e.g. EUR or $")
    decimals: int = Field(2, ge=0, le=4, description="minor units per major unit: 10**decimals")
    unknown_users: Literal["create", "deny"] = Field(
        "create", description="a job from a user the ledger does not know: create the user, or deny it")
    new_user_restricted: bool = Field(False, description="users created on first print are restricted")
    new_user_credit: int = Field(0, ge=0, description="starting balance of users created on first print")

    def money(self, amount: int) -> str:
        """An amount for people: 1.50, $1.50 or 1.50 EUR (a code goes after)."""
        from .ledger.cost import format_money
        if self.currency.isalpha() and len(self.currency) > 1:
            return f"{format_money(amount, self.decimals)} {self.currency}"
        return format_money(amount, self.decimals, self.currency)

    def parse(self, text: str) -> int:
        from .ledger.cost import parse_money
        return parse_money(text, self.decimals)


class ReleaseSettings(_Section):
    """Device login and release (Secure Print, Find-Me): node-wide."""

    # what a login at a device may use; the fields given pick the method
    methods: list[Literal["card", "card+pin", "identity+pin", "password"]] = Field(
        default_factory=lambda: ["card", "card+pin", "identity+pin", "password"],
        description="card alone, card and PIN, identity number and PIN, username and password")
    session_timeout: float = Field(120.0, gt=0, le=86400,
                                   description="seconds without a request before a device session ends")
    lockout_attempts: int = Field(5, ge=1, le=1000, description="wrong PINs/passwords in a row that lock a login")
    lockout_seconds: float = Field(300.0, gt=0, le=86400, description="how long a locked login stays locked")
    card_self_register: bool = Field(
        True, description="an unknown card is registered to whoever logs in with it by username and password")

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("needs at least one login method")
        return list(dict.fromkeys(v))


class OfflinePolicy(_Section):
    """What a site does while it cannot reach the primary. Set on the primary and synced
    to every site (a site's own [offline] section is used only until its first sync)."""

    account: Literal["offline-account", "personal", "cancel"] = Field(
        "offline-account", description="a job whose account would need a choice (the user may charge shared "
                                       "accounts, or names one the site does not know): charge the shared "
                                       "offline_account, the user's personal account, or cancel it")
    offline_account: str = Field("Offline Account", min_length=1, max_length=255,
                                 description="the shared account of account = offline-account")
    account_change: bool = Field(False, description="the owner may pick another of their accounts at the device")
    credit: Literal["last-known", "overdraft", "allow", "none"] = Field(
        "last-known", description="restricted accounts: the last known balance; plus offline_overdraft; "
                                  "print regardless of balance; or no credit at all")
    offline_overdraft: int = Field(0, ge=0, description="credit = overdraft: how far below the last known "
                                                        "balance plus overdraft (minor units)")
    unknown: Literal["assign", "untracked", "cancel"] = Field(
        "assign", description="jobs of users the site has never seen, while it cannot reach the primary (online "
                              "the primary decides, by its ledger.unknown_users): charge unknown_user; print "
                              "uncharged (not from findme queues); or cancel")
    unknown_user: str = Field("unknown", min_length=1, max_length=255,
                              description="unknown = assign: the user charged (made unrestricted on the primary)")
    password: Literal["cached", "card-pin"] = Field(
        "cached", description="password logins: against the hash cached at the last sync or online login; "
                              "or refused, leaving card and PIN logins (PIN hashes are synced)")

    def record(self) -> dict[str, Any]:
        return self.model_dump()


class SyncSettings(_Section):
    """How a site reaches its primary (role = "site")."""

    primary: str = Field("", description="the primary's web URL, e.g. https://print.example.com:8632")
    key: str | None = Field(None, repr=False, description="this site's key (spoolproxy sites add NAME on the primary)")
    key_file: Path | None = Field(None, description="a file holding the key instead (0600)")
    ca_file: Path | None = Field(None, description="PEM CA bundle that signs the primary's certificate")
    heartbeat: float = Field(2.0, gt=0, le=300, description="seconds between polls of the primary")
    offline_after: float = Field(10.0, gt=0, le=3600, description="seconds without an answer before offline")
    timeout: float = Field(5.0, gt=0, le=300, description="seconds one request to the primary may take")
    batch: int = Field(1000, ge=1, le=10000, description="journal entries sent per request")

    @field_validator("primary")
    @classmethod
    def _primary(cls, v: str) -> str:
        if v and (urlsplit(v).scheme not in ("http", "https") or not urlsplit(v).hostname):
            raise ValueError("must be an http:// or https:// URL of the primary's web server")
        return v.rstrip("/")


class SnmpSettings(_Section):
    """SNMP polling of a queue's printer (spoolproxy.snmp): status, supplies, page counter.
    SNMPv1 and v2c (community) only."""

    host: str | None = Field(None, description="the agent's host (default: the host of the queue's printer URI)")
    port: int = Field(161, ge=1, le=65535)
    version: Literal["1", "2c"] = "2c"
    community: str = Field("public", repr=False, description="the read community")
    interval: float = Field(30.0, gt=0, description="seconds between polls")
    timeout: float = Field(2.0, gt=0, description="seconds to wait for one answer")
    retries: int = Field(1, ge=0, le=10, description="tries after the first before the printer counts as unknown")
    settle: float = Field(60.0, ge=0, description="seconds a delivered job's page counter is waited for")

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: Any) -> Any:
        # TOML users write version = 1 or version = "2"
        if isinstance(v, int) and not isinstance(v, bool):
            v = str(v)
        return "2c" if v in ("2", "v2c") else "1" if v == "v1" else v

    @field_validator("community")
    @classmethod
    def _community(cls, v: str) -> str:
        if not v:
            raise ValueError("must not be empty (an agent answers only a community it knows, e.g. public)")
        return v

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.strip()
        if v.startswith("[") and v.endswith("]"):
            v = v[1:-1]  # [::1]
        if not v or any(c.isspace() or c in "/@?#[]" for c in v):
            raise ValueError("must be a bare host name or IP address, e.g. printer1.example.com")
        return v


QUEUE_MODES = ("direct", "hold", "findme")


class QueueSettings(_Section):
    # every queue but a Find-Me one has a printer; a Find-Me queue releases at the printers
    # of the queues named in ``printers``
    printer: str = Field("", description="ipp://host:port/path, socket://host:9100, "
                                         "lpd://host:515/queue or folder:DIR")
    mode: Literal["direct", "hold", "findme"] = Field(
        "direct", description="direct: print at once; hold: Secure Print, released at this printer; "
                              "findme: released at any printer of the queues in printers")
    # -- release (hold and findme queues) --
    printers: list[str] = Field(default_factory=list, description="findme: the queues whose printers release it")
    release: Literal["owner", "manager"] = Field(
        "owner", description="who releases a held job: its owner (and delegates), or only a manager")
    managers: list[str] = Field(default_factory=list,
                                description="users (or @group) who may see and release anyone's jobs")
    delegates: dict[str, list[str]] = Field(
        default_factory=dict, description="owner -> users (or @group) who may release the owner's jobs")
    hold_expiry: float = Field(4 * 3600.0, ge=0, description="seconds a held job waits; then deleted, uncharged "
                                                              "(0: never)")
    load_balance: bool = Field(False, description="findme: a release goes to the least busy ready printer "
                                                  "of the group")
    color: bool | None = Field(None, description="the printer prints colour (unset: ask the printer; "
                                                 "non-IPP printers count as colour)")
    default: bool = False
    info: str = ""
    location: str = ""
    make_and_model: str = ""
    poll_interval: float = Field(60.0, gt=0, description="seconds between printer attribute refreshes")
    retry_initial: float = Field(1.0, gt=0)
    retry_max: float = Field(60.0, gt=0)
    timeout: float = Field(30.0, gt=0, description="seconds before an unanswering printer counts as down")
    snmp: SnmpSettings | None = Field(None, description="poll the printer over SNMP for status and its page counter")
    # document analysis (pages, colour): what to do with a document the engine cannot count,
    # and whether Ghostscript may render pages whose colour the scan cannot decide
    uncountable: Literal["print", "hold", "cancel"] = Field(
        "print", description="print it flagged as uncounted, hold it for an administrator, or cancel it")
    ghostscript: bool = Field(True, description="render undecided pages with Ghostscript (sandboxed)")
    analysis_timeout: float = Field(120.0, gt=0, description="seconds one Ghostscript run may take")
    # what a page costs here, and the filters and restrictions of this queue
    cost: CostSettings = CostSettings()
    filters: FilterSettings = FilterSettings()

    @field_validator("printer")
    @classmethod
    def _printer_uri(cls, v: str) -> str:
        if not v:
            return v  # required or forbidden by the mode: see _mode_keys
        try:
            parts = urlsplit(v)
            host, _ = parts.hostname, parts.port
        except ValueError as e:  # bad port, bad IPv6 literal
            why = str(e)
            raise ValueError(f"not a valid printer URI: {why[:1].lower()}{why[1:]}") from None
        scheme = parts.scheme
        if scheme not in PRINTER_SCHEMES:
            raise ValueError(f"scheme {scheme or '(none)'!r} is not one of {', '.join(PRINTER_SCHEMES)}")
        if scheme != "folder" and not host:
            raise ValueError("printer URI has no host")
        if scheme == "folder" and not v[len("folder:"):].lstrip("/"):
            raise ValueError("folder: needs a directory, e.g. folder:printed")
        if scheme == "lpd":
            queue = unquote(parts.path).strip("/")
            if not queue:
                raise ValueError("lpd: needs a queue, e.g. lpd://host:515/queue")
            if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in queue):
                raise ValueError(f"lpd: queue {queue!r} contains a space or a control character")
        return v

    @model_validator(mode="after")
    def _retry_order(self) -> "QueueSettings":
        if self.retry_initial > self.retry_max:
            raise _KeyError(("retry_initial",), f"must not be greater than retry_max ({self.retry_max:g})")
        return self

    @model_validator(mode="after")
    def _mode_keys(self) -> "QueueSettings":
        if self.mode == "findme":
            if self.printer:
                raise _KeyError(("printer",), "a findme queue has no printer of its own: name the queues "
                                              "it releases at in printers")
            if not self.printers:
                raise _KeyError(("printers",), "a findme queue needs the queues whose printers release it")
        else:
            if not self.printer:
                raise _KeyError(("printer",), "required key is missing")
            if self.printers:
                raise _KeyError(("printers",), "only a findme queue has printers (this one has printer)")
        return self

    @model_validator(mode="after")
    def _snmp_keys(self) -> "QueueSettings":
        if self.snmp is None:
            return self
        if self.mode == "findme":
            raise _KeyError(("snmp",), "a findme queue has no printer of its own to poll: set snmp on the "
                                       "queues it releases at")
        if self.printer.startswith("folder:") and not self.snmp.host:
            raise _KeyError(("snmp", "host"), "a folder: printer has no host to poll: name the SNMP agent's host")
        return self

    @property
    def holds(self) -> bool:
        """Jobs wait for a release at a device (Secure Print or Find-Me)."""
        return self.mode != "direct"

    @property
    def snmp_host(self) -> str | None:
        """The host the SNMP monitor polls: snmp.host, else the printer URI's host
        (None without [queues.NAME.snmp])."""
        if self.snmp is None:
            return None
        return self.snmp.host or urlsplit(self.printer).hostname

    def may_release_for(self, who: str, groups: list[str] | tuple[str, ...], owner: str) -> bool:
        """``who`` (member of ``groups``) may release ``owner``'s jobs on this queue."""
        def named(names: list[str]) -> bool:
            return who in names or any(f"@{g}" in names for g in groups)
        if named(self.managers):
            return True
        if self.release == "manager":
            return False
        return who == owner or named(self.delegates.get(owner, []))


def _default_queues() -> dict[str, QueueSettings]:
    return {"demo": QueueSettings(printer="folder:printed", default=True, info="Demo queue",
                                  make_and_model="spoolproxy folder printer")}


class Settings(_Section):
    node: NodeSettings = NodeSettings()
    ipp: IppSettings = IppSettings()
    lpd: LpdSettings = LpdSettings()
    ledger: LedgerSettings = LedgerSettings()
    web: WebSettings = WebSettings()
    release: ReleaseSettings = ReleaseSettings()
    offline: OfflinePolicy = OfflinePolicy()
    sync: SyncSettings = SyncSettings()
    queues: dict[str, QueueSettings] = Field(default_factory=_default_queues)

    @model_validator(mode="after")
    def _role(self) -> "Settings":
        if self.node.role == "site":
            if not self.sync.primary:
                raise _KeyError(("sync", "primary"), 'a site needs the URL of its primary (node.role = "site")')
            if self.sync.key is None and self.sync.key_file is None:
                raise _KeyError(("sync", "key"), "a site needs its key (or sync.key_file): "
                                                 "run `spoolproxy sites add NAME` on the primary")
        elif self.node.role == "primary" and not self.web.enabled:
            raise _KeyError(("web", "enabled"), "a primary serves its sites over the web server: it must be on")
        elif self.sync.primary:
            raise _KeyError(("sync", "primary"), f'only a site follows a primary (node.role is "{self.node.role}")')
        return self

    @model_validator(mode="after")
    def _queues(self) -> "Settings":
        for name in self.queues:
            if not name or not all(c.isalnum() or c in "-_." for c in name):
                raise _KeyError(("queues", name),
                                "queue name may only use letters, digits, '-', '_' and '.'")
        defaults = [n for n, q in self.queues.items() if q.default]
        if len(defaults) > 1:
            others = ", ".join(_key_str(("queues", n, "default")) for n in defaults[:-1])
            raise _KeyError(("queues", defaults[-1], "default"),
                            f"only one queue may be the default ({others} is also true)")
        for name, q in self.queues.items():
            for i, other in enumerate(q.printers):
                target = self.queues.get(other)
                if target is None:
                    raise _KeyError(("queues", name, "printers"), f"no queue {other!r} (printers names queues)")
                if target.mode == "findme":
                    raise _KeyError(("queues", name, "printers"), f"{other!r} is a findme queue itself")
                if other in q.printers[:i]:
                    raise _KeyError(("queues", name, "printers"), f"{other!r} is named twice")
        state = _absolute(self.node.state_dir)
        seen: dict[Path, str] = {}
        for name, q in self.queues.items():
            if not q.printer.startswith("folder:"):
                continue  # also a findme queue: no printer
            folder = _absolute(self.folder_path(name))
            if folder == state or any(folder == state / r or (state / r) in folder.parents
                                      for r in RESERVED_STATE_NAMES):
                raise _KeyError(("queues", name, "printer"),
                                f"folder {folder} would mix printed files with the node's own (the state "
                                f"directory itself and its {' and '.join(RESERVED_STATE_NAMES)}); "
                                "use another folder, e.g. folder:printed")
            other = seen.get(folder)
            if other is not None:
                raise _KeyError(("queues", name, "printer"),
                                f"folder {folder} is also the folder of queue {other!r}; "
                                "each folder printer needs a directory of its own")
            seen[folder] = name
        return self

    @property
    def default_queue(self) -> str | None:
        for name, q in self.queues.items():
            if q.default:
                return name
        return next(iter(self.queues), None)

    def folder_path(self, queue: str) -> Path:
        """Directory a folder: printer writes to (relative paths are inside state_dir)."""
        rest = self.queues[queue].printer[len("folder:"):]
        p = Path(rest[2:] if rest.startswith("//") else rest)  # folder:///abs, folder:/abs, folder:rel
        return p if p.is_absolute() else self.node.state_dir / p

    @property
    def public_host(self) -> str:
        """Host name for the URLs a client uses: ipp.hostname, else this machine's
        name when listening on every address, else the listen address."""
        if self.ipp.hostname:
            return self.ipp.hostname
        if self.ipp.listen in ("0.0.0.0", "::", "*"):
            import socket
            return socket.gethostname() or "localhost"
        return _url_host(self.ipp.listen)

    @property
    def local_host(self) -> str:
        """Address a process on this machine connects to, to reach the IPP listener."""
        if self.ipp.listen in ("0.0.0.0", "*"):
            return "127.0.0.1"
        if self.ipp.listen == "::":
            return "::1"
        return self.ipp.listen

    def queue_uri(self, queue: str, host: str | None = None) -> str:
        """The printer URI a client prints to: ipp://HOST:PORT/ipp/print/QUEUE."""
        return f"ipp://{_url_host(host or self.public_host)}:{self.ipp.port}/ipp/print/{queue}"


def _url_host(host: str) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass
    return host


def _absolute(p: Path) -> Path:
    return Path(os.path.normpath(os.path.abspath(p)))


def _key_str(loc: tuple[Any, ...]) -> str:
    """A key path as TOML writes it: queues.demo.mode, queues."a.b".mode."""
    out = []
    for part in loc:
        s = str(part)
        bare = s and all(c.isascii() and (c.isalnum() or c in "-_") for c in s)
        out.append(s if bare else json.dumps(s, ensure_ascii=False))
    return ".".join(out)


_MESSAGES = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
    "model_type": "must be a table (a [section] or {...})",
    "model_attributes_type": "must be a table (a [section] or {...})",
    "dict_type": "must be a table (a [section] or {...})",
}


def _format_errors(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        exc = (e.get("ctx") or {}).get("error")
        if isinstance(exc, _KeyError):
            loc = loc + exc.key
        key = _key_str(loc) or "(top level)"
        msg = _MESSAGES.get(e["type"])
        if msg is None:
            msg = e["msg"].removeprefix("Value error, ")
            if msg.startswith("Input should be "):
                msg = "must be " + msg.removeprefix("Input should be ")
            inp = e.get("input")
            if isinstance(inp, (str, int, float, bool)) and e["type"] != "value_error":
                shown = repr(inp)
                msg += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
        lines.append(f"{source}: {key}: {msg}")
    return "\n".join(lines)


def from_mapping(data: dict[str, Any], source: str = "<config>") -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, source)) from None


def default_path() -> Path | None:
    """The config file the command uses when none is given: $SPOOLPROXY_CONFIG, or
    None (the embedded defaults)."""
    env = os.environ.get(ENV_CONFIG, "").strip()
    return Path(env) if env else None


def load(path: Path | str | None = None, *, overrides: dict[str, Any] | None = None) -> Settings:
    """Read and validate a TOML file (None: embedded defaults). ``overrides`` are
    section -> {key: value} applied on top (command-line options); None values are
    left out, so an option that was not given does not override the file."""
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"{source}: file not found") from None
        except IsADirectoryError:
            raise ConfigError(f"{source}: is a directory, not a config file") from None
        except OSError as e:
            raise ConfigError(f"{source}: cannot read: {e.strerror or e}") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"{source}: not valid TOML: not UTF-8 text (byte {e.start})") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{source}: not valid TOML: {e}") from None
    for section, values in (overrides or {}).items():
        given = {k: v for k, v in values.items() if v is not None}
        if not given:
            continue
        current = data.setdefault(section, {})
        if isinstance(current, dict):  # otherwise validation reports the section itself
            current.update(given)
    return from_mapping(data, source)
