"""The status page works offline: its HTML, script and style load nothing from anywhere but
the hub that serves them (no CDN, no web fonts), and the page asks the hub only for /status."""

from __future__ import annotations

import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[3] / "hub" / "static"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # a name, never fetched


def test_the_page_and_its_assets_name_no_other_host() -> None:
    for path in STATIC.iterdir():
        text = path.read_text().replace(SVG_NAMESPACE, "")
        assert not re.search(r"(https?:)?//[\w.-]+\.[a-z]{2,}", text), f"{path.name} names a host"
        assert "@import" not in text and "url(" not in text, f"{path.name} loads more files"


def test_the_page_loads_only_its_own_static_files_and_fetches_only_status() -> None:
    html = (STATIC / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sorted(refs) == ["/static/app.js", "/static/style.css"]
    script = (STATIC / "app.js").read_text()
    assert re.findall(r"fetch\(([^,)]+)", script) == ['"/status"']
