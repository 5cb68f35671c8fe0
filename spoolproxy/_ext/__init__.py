"""Compiled twins built from ext/*.pyx (absent when built with SPOOLPROXY_NO_EXTENSIONS=1).

Import them through spoolproxy._twins.load, never directly.
"""
