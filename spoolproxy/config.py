"""TOML configuration -> validated, frozen settings.

Every error names the file, the key and the problem; unknown keys are errors.
``spoolproxy serve`` with no file uses the embedded defaults: a standalone node with
one direct queue "demo" in front of a folder printer inside the state directory.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PRINTER_SCHEMES = ("ipp", "http", "socket", "folder")


class ConfigError(Exception):
    """The configuration is unusable; the message names the file and key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeSettings(_Section):
    name: str = "spoolproxy"
    role: Literal["standalone", "primary", "site"] = "standalone"
    state_dir: Path = Path("spoolproxy-state")
    job_history: float = Field(86400.0, ge=0, description="seconds a finished job is kept")
    fsync: bool = True
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class IppSettings(_Section):
    listen: str = "0.0.0.0"
    port: int = Field(8631, ge=0, le=65535)
    # host name put in the URIs the node hands out; default: the name the client used
    hostname: str | None = None
    max_header_bytes: int = Field(1 << 20, ge=4096, description="largest IPP attribute section")
    max_job_bytes: int = Field(0, ge=0, description="largest document, 0 = no limit")
    idle_timeout: float = Field(60.0, gt=0, description="seconds a connection may stay silent")


class QueueSettings(_Section):
    printer: str = Field(description="ipp://host:port/path, socket://host:9100 or folder:DIR")
    mode: Literal["direct", "hold"] = "direct"
    default: bool = False
    info: str = ""
    location: str = ""
    make_and_model: str = ""
    poll_interval: float = Field(60.0, gt=0, description="seconds between printer attribute refreshes")
    retry_initial: float = Field(1.0, gt=0)
    retry_max: float = Field(60.0, gt=0)
    timeout: float = Field(30.0, gt=0, description="seconds before an unanswering printer counts as down")

    @field_validator("printer")
    @classmethod
    def _printer_uri(cls, v: str) -> str:
        scheme = urlsplit(v).scheme
        if scheme not in PRINTER_SCHEMES and scheme != "ipps":
            raise ValueError(f"scheme {scheme or '(none)'!r} is not one of {', '.join(PRINTER_SCHEMES)}")
        if scheme in ("ipp", "ipps", "http", "socket") and not urlsplit(v).hostname:
            raise ValueError("printer URI has no host")
        if scheme == "folder" and not v[len("folder:"):].lstrip("/"):
            raise ValueError("folder: needs a directory, e.g. folder:printed")
        return v


def _default_queues() -> dict[str, QueueSettings]:
    return {"demo": QueueSettings(printer="folder:printed", default=True, info="Demo queue",
                                  make_and_model="spoolproxy folder printer")}


class Settings(_Section):
    node: NodeSettings = NodeSettings()
    ipp: IppSettings = IppSettings()
    queues: dict[str, QueueSettings] = Field(default_factory=_default_queues)

    @field_validator("queues")
    @classmethod
    def _queue_names(cls, v: dict[str, QueueSettings]) -> dict[str, QueueSettings]:
        for name in v:
            if not name or not all(c.isalnum() or c in "-_." for c in name):
                raise ValueError(f"queue name {name!r} may only use letters, digits, '-', '_' and '.'")
        return v

    @model_validator(mode="after")
    def _one_default(self) -> "Settings":
        defaults = [n for n, q in self.queues.items() if q.default]
        if len(defaults) > 1:
            raise ValueError(f"only one queue may be default, not {', '.join(defaults)}")
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


def _format_errors(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{source}: {key}: {msg}")
    return "\n".join(lines)


def from_mapping(data: dict[str, Any], source: str = "<config>") -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, source)) from None


def load(path: Path | str | None = None, *, overrides: dict[str, Any] | None = None) -> Settings:
    """Read and validate a TOML file (None: embedded defaults). ``overrides`` are
    section -> {key: value} applied on top (command-line options)."""
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"{source}: file not found") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{source}: not valid TOML: {e}") from None
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    return from_mapping(data, source)
