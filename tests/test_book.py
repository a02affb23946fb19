"""The built book: assembled from the committed notebooks and figures, built offline, and every
page opened in headless Chromium at 1300 px — no broken image, no console error, no request leaving
the machine, every plotly figure drawn, and a claims page that lists every claim of
figures/claims.json with each verdict in view (no horizontal scroll). A second, minimal book holds
a notebook executed with a plotly Mesh3d figure and gets the same check."""
import contextlib
import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from p2nlib.book import build as book, claims
from p2nlib.core import paths

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
VIEWPORT = {"width": 1300, "height": 900}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 # WebGL (plotly's 3D traces) on the CPU, as on a machine without a GPU
                 "--enable-unsafe-swiftshader", "--use-angle=swiftshader"]
SOURCES = ("_build", "chapters", "figures", "claims.md", "running.md", book.PLOTLYJS)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    work = tmp_path_factory.mktemp("book")
    src = work / "src"
    shutil.copytree(paths.ROOT / "book", src, ignore=shutil.ignore_patterns(*SOURCES))
    book.prepare(notebooks_dir=paths.ROOT / "notebooks", figures_dir=paths.ROOT / "figures", book_dir=src)
    return book.build(book_dir=src, output=work / "out")


def test_book_has_every_chapter(built_book):
    chapters = {p.stem for p in (paths.ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    built = {p.stem for p in (built_book / "chapters").glob("*.html")}
    assert chapters and chapters <= built
    assert (built_book / "claims.html").exists()
    assert (built_book / "_static" / book.PLOTLYJS).stat().st_size > 1_000_000


@contextlib.contextmanager
def serve(folder: Path):
    """The built HTML on a local server (127.0.0.1, a free port); yields its base URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()


# Layout of the claims page at the test viewport: horizontal scrolling (the page or any scroll box) and
# every verdict cell's horizontal extent against the viewport and its table's visible box.
CLAIMS_LAYOUT_JS = """() => {
  const vw = document.documentElement.clientWidth, out = {vw, rows: 0, scroll: [], outside: [], links: []};
  if (document.documentElement.scrollWidth > vw + 1) out.scroll.push(`page is ${document.documentElement.scrollWidth} px wide`);
  for (const el of document.querySelectorAll('body *')) {
    const ox = getComputedStyle(el).overflowX;
    if ((ox === 'auto' || ox === 'scroll') && el.scrollWidth > el.clientWidth + 1)
      out.scroll.push(`${el.tagName.toLowerCase()}.${el.className} scrolls: ${el.scrollWidth} > ${el.clientWidth} px`);
  }
  for (const tr of document.querySelectorAll('table.p2n-claims tbody tr')) {
    out.rows += 1;
    const id = tr.cells[0].innerText.trim(), td = tr.cells[3], last = tr.cells[tr.cells.length - 1];
    const label = td && td.querySelector('.p2n-verdict');
    if (tr.cells.length < 4 || !label) { out.outside.push(`${id}: ${tr.cells.length} cells, verdict label ${!!label}`); continue; }
    const r = td.getBoundingClientRect(), end = last.getBoundingClientRect();
    const box = td.closest('.pst-scrollable-table-container, table').getBoundingClientRect();
    if (r.left < 0 || end.right > vw + 0.5 || end.right > box.right + 0.5 || label.getBoundingClientRect().right > r.right + 0.5)
      out.outside.push(`${id}: verdict cell spans x ${r.left.toFixed(0)}..${r.right.toFixed(0)} (viewport ${vw})`);
    const a = tr.cells[0].querySelector('a[href^="#"]');
    if (!a || !document.getElementById(decodeURIComponent(a.hash.slice(1)))) out.links.push(id);
  }
  return out;
}"""


def claims_problems(page, n_claims: int, n_discussions: int = 0) -> list[str]:
    layout = page.evaluate(CLAIMS_LAYOUT_JS)
    text = page.inner_text("body")
    problems = [f"horizontal scroll at {VIEWPORT['width']} px: {s}" for s in layout["scroll"]]
    problems += [f"verdict not in view: {s}" for s in layout["outside"]]
    problems += [f"claim {s} does not link to its details" for s in layout["links"]]
    if layout["rows"] != n_claims:
        problems.append(f"claims page lists {layout['rows']} claims, figures/claims.json holds {n_claims}")
    if not all(f"{kind} (" in text for kind in ("paper", "stand-in", "check")) or "By kind" not in text:
        problems.append("the claims page does not show the per-kind counts")
    if text.count("Written for the verdict:") != n_discussions:
        problems.append(f"the claims page shows {text.count('Written for the verdict:')} discussions, "
                        f"book/claims_discussion.md has {n_discussions} for claims of the ledger")
    return problems


def plotly_problems(page, timeout_ms: int = 20_000) -> list[str]:
    """Every plotly figure on the page was drawn by the book's own plotly.js (within ``timeout_ms``: a large
    3D mesh is drawn after the page's network is idle, later still on a loaded machine)."""
    try:
        page.wait_for_function("() => document.querySelectorAll('.plotly-graph-div').length === "
                               "document.querySelectorAll('.plotly-graph-div.js-plotly-plot').length",
                               timeout=timeout_ms)
    except Exception:   # counted and reported below
        pass
    counts = page.evaluate("""() => ({
        divs: document.querySelectorAll('.plotly-graph-div').length,
        drawn: document.querySelectorAll('.plotly-graph-div.js-plotly-plot').length,
        gl: document.querySelectorAll('.js-plotly-plot .gl-container canvas').length,
        scenes: document.querySelectorAll('.js-plotly-plot [id^="scene"]').length,
        nogl: /WebGL is not supported/i.test(document.body.innerText)})""")
    problems = []
    if counts["drawn"] != counts["divs"]:
        problems.append(f"{counts['divs'] - counts['drawn']} of {counts['divs']} plotly figures not drawn")
    if counts["nogl"] or (counts["scenes"] and not counts["gl"]):
        problems.append("a 3D plotly figure has no WebGL canvas")
    return problems


def page_problems(html_dir: Path, checks: dict | None = None) -> tuple[list[str], dict]:
    """Open every page of a built book in headless Chromium; returns the problems found and, per page,
    the number of plotly figures drawn. ``checks``: page path -> function(page) -> extra problems."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (`make browser`, or "
                    "apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    pages = sorted(p.relative_to(html_dir).as_posix() for p in html_dir.rglob("*.html")
                   if not p.relative_to(html_dir).parts[0].startswith("_"))
    assert pages, "no pages built"
    problems, figures = [], {}
    with serve(html_dir) as base, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for rel in pages:
            page, errors = browser.new_page(viewport=VIEWPORT), []
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("response", lambda r: errors.append(f"HTTP {r.status} for {r.url}") if r.status >= 400 else None)
            page.on("request", lambda r: errors.append(f"external request {r.url}")
                    if not r.url.startswith((base, "data:", "blob:", "about:")) else None)
            page.goto(base + rel, wait_until="networkidle")
            broken = page.evaluate(
                "() => Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
            errors += [f"broken image {src}" for src in broken]
            errors += plotly_problems(page)
            figures[rel] = page.evaluate("() => document.querySelectorAll('.js-plotly-plot').length")
            if checks and rel in checks:
                errors += checks[rel](page)
            problems += [f"{rel}: {e}" for e in errors]
            page.close()
        browser.close()
    return problems, figures


@pytest.mark.browser
def test_pages_in_headless_chromium(built_book):
    ids = {c["id"] for c in claims.load(paths.ROOT / "figures" / "claims.json")["claims"]}     # current ids
    n_disc = len(set(book.discussion(paths.ROOT / "book" / "claims_discussion.md")) & ids)
    problems, _ = page_problems(built_book, {"claims.html": lambda page: claims_problems(page, len(ids), n_disc)})
    assert not problems, "\n".join(problems)


PLOTLY_CELL = """\
from p2nlib.book.notebook import setup
import plotly.graph_objects as go

setup(profile="tiny", device="cpu")
go.Figure(go.Mesh3d(x=[0, 1, 0, 0], y=[0, 0, 1, 0], z=[0, 0, 0, 1], i=[0, 0, 0, 1], j=[1, 2, 3, 2],
                    k=[2, 3, 1, 3], intensity=[0, 1, 2, 3], flatshading=True))
"""


@pytest.fixture(scope="module")
def plotly_book(tmp_path_factory):
    """A two-page book: an intro and one notebook executed (as `make book` does) with a Mesh3d figure."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("plotly")
    work = tmp_path_factory.mktemp("plotly-book")
    src = work / "src"
    src.mkdir()
    for name in ("_config.yml", "_static", "_extra"):
        (shutil.copytree if (paths.ROOT / "book" / name).is_dir() else shutil.copy2)(
            paths.ROOT / "book" / name, src / name)
    (src / "_static" / book.PLOTLYJS).unlink(missing_ok=True)
    (src / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n- file: mesh\n")
    (src / "intro.md").write_text("# A plotly test book\n\nOne chapter with an interactive mesh.\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A mesh"),
                                         nbformat.v4.new_code_cell(PLOTLY_CELL)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    with pytest.MonkeyPatch.context() as mp:          # the kernel writes its claims record under work/
        for var, value in {"P2N_FIGURES": work / "figures", "P2N_ARTIFACTS": work / "artifacts",
                           "P2N_NOTEBOOK": "plotly_test", "HF_HUB_OFFLINE": "1"}.items():
            mp.setenv(var, str(value))
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(work)}}).execute()
    nbformat.write(nb, src / "mesh.ipynb")
    book.copy_plotlyjs(src)
    return nb, book.build(book_dir=src, output=work / "out")


def test_plotly_figure_output_is_offline_html(plotly_book):
    nb, html = plotly_book
    [out] = [o for o in nb.cells[1].outputs if "data" in o]
    assert {"text/html", "application/vnd.plotly.v1+json"} <= set(out["data"])
    text = out["data"]["text/html"]
    assert "Plotly.newPlot" in text and "mesh3d" in text
    assert "http" not in text and "require" not in text          # no CDN, no require.js, no MathJax
    assert "Plotly.newPlot" in (html / "mesh.html").read_text()


@pytest.mark.browser
def test_plotly_figure_is_drawn_in_headless_chromium(plotly_book):
    _, html = plotly_book
    problems, figures = page_problems(html)
    assert not problems, "\n".join(problems)
    assert figures.get("mesh.html") == 1, figures
