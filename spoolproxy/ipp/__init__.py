"""IPP: sans-IO codec, constants, the proxy's printer object, server and client."""
from .model import JobState, Op, PrinterState, Status, Tag
from .types import Attribute, Collection, Group, Message, Range, Resolution, TextLang

__all__ = ["JobState", "Op", "PrinterState", "Status", "Tag", "Attribute", "Collection", "Group",
           "Message", "Range", "Resolution", "TextLang"]
