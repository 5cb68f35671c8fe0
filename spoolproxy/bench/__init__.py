"""``spoolproxy bench``: the load-testing suite.

    spoolproxy bench run --seconds 60            # a node, sink printers, IPP + LPD + releases
    spoolproxy bench compare A.json B.json       # two runs side by side

``run`` sets a node up and drives it (``load``), ``sinks`` are the printers that
accept as fast as the network allows, ``documents`` the mix made once with
Ghostscript, ``report`` the JSON, the plot and the tables.
"""
from pathlib import Path

DEFAULT_MIX = "small.pdf=6,mixed.pdf=3,report.pdf=1,doc.ps=1,doc.pcl=1,doc.pxl=1,doc.pwg=1,doc.urf=1"
DEFAULT_CACHE = Path.home() / ".cache" / "spoolproxy-bench"  # the documents, made once
