"""The console's vendored chart library: the pinned version, byte for byte, with its licence beside it."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "functions" / "api" / "console_assets"
PAGE = ROOT / "functions" / "api" / "console.html"
MANIFEST = json.loads((ASSETS / "manifest.json").read_text(encoding="utf-8"))


def test_every_vendored_file_has_the_hash_and_version_the_manifest_pins() -> None:
    # Given the manifest of the vendored files
    assert set(MANIFEST) == {"chart.umd.min.js", "chart.js.LICENSE.md"}
    for name, entry in MANIFEST.items():
        # Then each file is there, unchanged from the published package
        digest = hashlib.sha256((ASSETS / name).read_bytes()).hexdigest()
        assert digest == entry["sha256"], f"{name} is not the vendored {entry['package']} {entry['version']}"
        # And the README's table says the same hash
        assert entry["sha256"] in (ASSETS / "README.md").read_text(encoding="utf-8")
    library = MANIFEST["chart.umd.min.js"]
    assert (library["package"], library["version"], library["license"]) == ("chart.js", "4.6.2", "MIT")
    assert (ASSETS / "chart.umd.min.js").read_text(encoding="utf-8").startswith("/*!\n * Chart.js v4.6.2\n")


def test_the_licence_sits_next_to_the_library() -> None:
    licence = (ASSETS / MANIFEST["chart.umd.min.js"]["license_file"]).read_text(encoding="utf-8")
    assert licence.startswith("The MIT License (MIT)") and "Chart.js Contributors" in licence


def test_the_page_loads_the_library_from_beside_it_with_its_integrity_hash() -> None:
    page = PAGE.read_text(encoding="utf-8")
    # The page's only external script is the vendored file, by a relative path (no CDN, works from a bucket)
    sources = re.findall(r'<script src="([^"]+)" integrity="([^"]+)"', page)
    digest = base64.b64encode(hashlib.sha256((ASSETS / "chart.umd.min.js").read_bytes()).digest()).decode()
    assert sources == [("console/assets/chart.umd.min.js", f"sha256-{digest}")]
    assert page.count("<script") == 2 and "//" not in sources[0][0]
