"""IPP: sans-IO codec, constants, the proxy's printer object, server and client."""
from .model import Op, PrinterState, JobState, Status, Tag
from .types import Attribute, Collection, Group, Message, Range, Resolution, TextLang
