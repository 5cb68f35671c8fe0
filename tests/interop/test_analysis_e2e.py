"""The analysis stage end to end: a real client prints to the node, the document
engine counts the job before it is delivered, and Get-Job-Attributes shows the
counts (job-impressions with the IPP copies, job-media-sheets, the format found
by content) while the folder printer receives the document unchanged."""
from __future__ import annotations

import plistlib
import subprocess
import tempfile
from pathlib import Path

import pytest

import peers

pytestmark = pytest.mark.interop

PRINT_AND_QUERY = """{
 NAME "Print-Job"
 OPERATION Print-Job
 GROUP operation-attributes-tag
 ATTR charset attributes-charset utf-8
 ATTR naturalLanguage attributes-natural-language en
 ATTR uri printer-uri $uri
 ATTR name requesting-user-name alice
 ATTR mimeMediaType document-format %(format)s
 GROUP job-attributes-tag
 ATTR integer copies %(copies)d
 FILE $filename
 STATUS successful-ok
 EXPECT job-id OF-TYPE integer
}
{
 NAME "Wait for completion"
 OPERATION Get-Job-Attributes
 GROUP operation-attributes-tag
 ATTR charset attributes-charset utf-8
 ATTR naturalLanguage attributes-natural-language en
 ATTR uri printer-uri $uri
 ATTR integer job-id $job-id
 ATTR name requesting-user-name alice
 ATTR keyword requested-attributes job-state,job-impressions,job-media-sheets,document-format-detected,document-format-supplied
 STATUS successful-ok
 EXPECT job-state WITH-VALUE 9 REPEAT-NO-MATCH REPEAT-LIMIT 100
}
"""


def print_and_query(uri: str, document: Path, fmt: str, copies: int) -> dict:
    tool = peers.require("ipptool")
    with tempfile.TemporaryDirectory(prefix="analysis-e2e-") as d:
        test = Path(d) / "print.test"
        test.write_text(PRINT_AND_QUERY % {"format": fmt, "copies": copies})
        proc = subprocess.run([tool, "-T", "30", "-X", "-f", str(document), uri, str(test)],
                              capture_output=True, text=True, timeout=180)
    plist = proc.stdout[:proc.stdout.find("</plist>") + len("</plist>")]  # REPEAT notes follow it
    data = plistlib.loads(plist.encode())
    tests = data["Tests"]
    assert len(tests) == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert all(t.get("Successful") for t in tests), proc.stdout[-3000:]
    return tests[1]["ResponseAttributes"][1]


@pytest.fixture
def folder_node(node, tmp_path):
    return node({"q": {"printer": f"folder:{tmp_path / 'out'}"}})


def test_pdf_is_counted_with_copies_and_delivered_unchanged(folder_node, tmp_path):
    peers.require("gs")
    pdf = peers.make_pdf(tmp_path / "three.pdf", pages=3, color=True)
    job = print_and_query(folder_node.uri("q"), pdf, "application/pdf", copies=2)
    assert job["job-impressions"] == 6 and job["job-media-sheets"] == 6
    assert job["document-format-detected"] == "application/pdf"
    out = peers.wait_for(lambda: list((tmp_path / "out").glob("*")), timeout=30)
    assert [p.read_bytes() for p in out] == [pdf.read_bytes()]


def test_octet_stream_pcl_xl_is_detected_and_counted(folder_node, tmp_path):
    gs = peers.require("gs")
    src = peers.make_ps(tmp_path / "five.ps", pages=5, color=False)
    pxl = tmp_path / "five.pxl"
    subprocess.run([gs, "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=pxlmono", "-r75",
                    f"-sOutputFile={pxl}", str(src)], check=True, timeout=120)
    job = print_and_query(folder_node.uri("q"), pxl, "application/octet-stream", copies=1)
    assert job["document-format-detected"] == "application/vnd.hp-pclxl"
    assert job["job-impressions"] == 5
