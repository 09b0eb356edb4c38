#!/usr/bin/env python3
"""Publish the asv dashboard so that it opens offline, and serve it.

asv 0.6's ``index.html`` loads jQuery, flot, stupidtable, blueimp-md5 and bootstrap
from public CDNs; without network every page shows only "Can not determine continental
origin of swallow". This script

1. runs ``asv publish`` (unless ``--no-publish``),
2. copies the vendored libraries of ``bench/asv_vendor/`` (npm files with their
   licences, see its README) into the site as ``vendor/`` and rewrites each CDN
   ``<script>``/``<link>`` of ``index.html`` to the local copy (dropping ``integrity``,
   ``crossorigin`` and ``referrerpolicy``, which belong to the CDN files),
3. fails if any page still loads a script or stylesheet over http(s), and
4. with ``--serve``, serves the folder over http and prints the URL (the dashboard
   reads its JSON with XMLHttpRequest, which browsers refuse on ``file://``: open it
   through a server, not by double-clicking index.html).

Examples (from the repository root)::

    .venv/bin/python scripts/asv_publish.py --serve            # .asv/html, http://127.0.0.1:8080/
    .venv/bin/python scripts/asv_publish.py --no-publish --html-dir ~/Downloads/asv-html/html --serve

The last form serves an unpacked CI artifact (already vendored) with nothing but Python.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "bench" / "asv_vendor"
VENDOR_DIR = "vendor"  # the folder inside the published site

_TAG = re.compile(r"<(script|link)\b[^>]*>", re.IGNORECASE)
_URL_ATTR = re.compile(r"""\b(src|href)\s*=\s*(["'])(https?://[^"']+)\2""", re.IGNORECASE)
_CDN_ONLY_ATTRS = re.compile(r"""\s+(integrity|crossorigin|referrerpolicy)(\s*=\s*(["'])[^"']*\3)?""", re.IGNORECASE)


def remote_resources(html: str) -> list[str]:
    """URLs of scripts and stylesheets (and other <link> resources but feeds) that the
    page loads over http(s). Plain hyperlinks (<a href>) are not resources."""
    found = []
    for tag in _TAG.finditer(html):
        text = tag.group(0)
        if tag.group(1).lower() == "link" and re.search(r"""rel\s*=\s*["']alternate["']""", text, re.IGNORECASE):
            continue
        for m in _URL_ATTR.finditer(text):
            found.append(m.group(3))
    return found


def vendorize(html_dir: Path, vendor: Path = VENDOR) -> list[str]:
    """Copy the vendored libraries into html_dir/vendor and rewrite index.html to them.

    Returns the URLs rewritten (empty when index.html was already vendored). Raises
    RuntimeError when a page still loads a remote script or stylesheet afterwards
    (e.g. a newer asv whose index.html names a CDN file vendor.json does not map)."""
    html_dir = Path(html_dir)
    index = html_dir / "index.html"
    if not index.is_file():
        raise FileNotFoundError(f"{index}: no published dashboard (run asv publish first)")
    table = json.loads((vendor / "vendor.json").read_text())["cdn"]
    dest = html_dir / VENDOR_DIR
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(vendor, dest)

    rewritten: list[str] = []

    def fix(tag: re.Match) -> str:
        text = tag.group(0)
        m = _URL_ATTR.search(text)
        if not m or m.group(3) not in table:
            return text
        rewritten.append(m.group(3))
        local = f"{VENDOR_DIR}/{table[m.group(3)]['local']}"
        text = text[:m.start(3)] + local + text[m.end(3):]
        return _CDN_ONLY_ATTRS.sub("", text)

    html = _TAG.sub(fix, index.read_text(encoding="utf-8"))
    index.write_text(html, encoding="utf-8")
    remote = {page.name: remote_resources(page.read_text(encoding="utf-8")) for page in sorted(html_dir.glob("*.html"))}
    remote = {k: v for k, v in remote.items() if v}
    if remote:
        raise RuntimeError(f"pages still load remote resources (add them to {vendor / 'vendor.json'}): {remote}")
    return rewritten


def html_dir_of(config: Path) -> Path:
    from asv import util

    conf = util.load_json(str(config), js_comments=True)
    path = Path(conf.get("html_dir", "html"))
    return path if path.is_absolute() else (config.resolve().parent / path)


def serve(html_dir: Path, port: int, bind: str) -> None:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html_dir))
    with http.server.ThreadingHTTPServer((bind, port), handler) as httpd:
        host, port = httpd.server_address[:2]
        print(f"serving {html_dir} at http://{host}:{port}/  (Ctrl-C to stop)", flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=ROOT / "asv.conf.json", help="asv config (default: the project's)")
    ap.add_argument("--html-dir", type=Path, help="the published folder (default: html_dir of --config)")
    ap.add_argument("--no-publish", action="store_true",
                    help="do not run asv publish; only vendor (idempotent) / serve")
    ap.add_argument("--serve", action="store_true", help="serve the folder over http and print its URL")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--bind", default="127.0.0.1")
    args = ap.parse_args(argv)

    html_dir = args.html_dir or html_dir_of(args.config)
    if not args.no_publish:
        cmd = [sys.executable, "-m", "asv", "publish", "--config", str(args.config)]
        if args.html_dir:
            cmd += ["--html-dir", str(args.html_dir)]
        subprocess.run(cmd, check=True)
    rewritten = vendorize(html_dir)
    print(f"{html_dir}: {len(rewritten)} CDN references now load from {VENDOR_DIR}/; "
          "no page loads a remote script or stylesheet", flush=True)
    if args.serve:
        serve(html_dir, args.port, args.bind)
    return 0


if __name__ == "__main__":
    sys.exit(main())
