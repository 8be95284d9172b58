#!/usr/bin/env python3
"""Save a PNG of a kpi-monitor page as headless Chromium renders it (for docs/).

Usage: ``python scripts/screenshot.py URL OUT.png [--size 1400,1800]``, e.g. with the
daemon running on the bundled example::

    python scripts/screenshot.py http://127.0.0.1:9108/scorecard docs/scorecard.png

Needs ``chromium`` (Debian package) on the PATH.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--size", default="1400,1800", help="window WIDTH,HEIGHT in pixels")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        result = subprocess.run(  # noqa: S603 - the URL is an argument to chromium
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
             f"--user-data-dir={profile}", f"--window-size={args.size}",
             f"--screenshot={args.out}", args.url],
            capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        print(result.stderr, file=sys.stderr)
        return result.returncode
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
