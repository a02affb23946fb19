"""The built book: assembled from the committed notebooks and figures, built offline, and every
page opened in headless Chromium — no broken image, no console error, no request leaving the
machine, and a claims page listing every claim of figures/claims.json."""
import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest

from p2nlib.book import build as book
from p2nlib.core import paths

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    work = tmp_path_factory.mktemp("book")
    src = work / "src"
    shutil.copytree(paths.ROOT / "book", src, ignore=shutil.ignore_patterns("_build", "chapters", "figures", "claims.md"))
    book.prepare(notebooks_dir=paths.ROOT / "notebooks", figures_dir=paths.ROOT / "figures", book_dir=src)
    return book.build(book_dir=src, output=work / "out")


def test_book_has_every_chapter(built_book):
    chapters = {p.stem for p in (paths.ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    built = {p.stem for p in (built_book / "chapters").glob("*.html")}
    assert chapters and chapters <= built
    assert (built_book / "claims.html").exists()


@pytest.mark.browser
def test_pages_in_headless_chromium(built_book):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(built_book))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/"
    pages = sorted(p.relative_to(built_book).as_posix() for p in built_book.rglob("*.html")
                   if not p.relative_to(built_book).parts[0].startswith("_"))
    problems = []
    n_claims = len(json.loads((paths.ROOT / "figures" / "claims.json").read_text())["claims"])
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            for rel in pages:
                page, errors = browser.new_page(), []
                page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
                page.on("response", lambda r: errors.append(f"HTTP {r.status} for {r.url}") if r.status >= 400 else None)
                page.on("request", lambda r: errors.append(f"external request {r.url}")
                        if not r.url.startswith((base, "data:", "blob:", "about:")) else None)
                page.goto(base + rel, wait_until="networkidle")
                broken = page.evaluate(
                    "() => Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
                errors += [f"broken image {src}" for src in broken]
                if rel == "claims.html":
                    rows = page.evaluate("() => document.querySelectorAll('table tbody tr').length")
                    if rows != n_claims:
                        errors.append(f"claims page lists {rows} claims, figures/claims.json holds {n_claims}")
                problems += [f"{rel}: {e}" for e in errors]
                page.close()
            browser.close()
    finally:
        server.shutdown()
    assert pages, "no pages built"
    assert not problems, "\n".join(problems)
