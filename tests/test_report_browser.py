"""The report and the pyLDAvis page in a real browser: Debian's Chromium, driven by Playwright, offline.

Each page is opened from disk (file://) with every other request aborted and
counted; any request, console error or uncaught exception fails the test.
The test then uses the page as a reader would: every topic section is there,
the map draws its points (hovering a dot names its word, clicking a star
lists its topic) and the search box answers. Screenshots go to pytest's
temporary directory. Waits are on the page's state, with generous timeouts,
never on sleeps: the machine may be loaded.

Chromium comes from the system (`apt-get install chromium`, which `.ci/run`
does when it is missing); Playwright never downloads a browser here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from etm.cli import main

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 240_000  # a loaded 2-core machine can take a while to parse 6 MB of inline JavaScript
STOP_WORDS = Path(__file__).resolve().parents[1] / "examples" / "stopwords_extra.txt"

# the first 600 training messages are from alt.atheism and comp.graphics
SEEDS = {"alt.atheism": ["god", "atheism", "religion", "belief"],
         "comp.graphics": ["graphics", "image", "images", "jpeg"],
         "software": ["file", "program", "software", "format"]}


@pytest.fixture(scope="module")
def browser() -> Any:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (`apt-get install -y chromium`; .ci/run "
                    "does it)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=WAIT_MS)
        yield chromium
        chromium.close()


class OfflinePage:
    """A page opened from disk with every non-file request aborted and recorded, console errors collected."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.page.set_default_timeout(WAIT_MS)
        self.page.route("**/*", self._route)
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.page.goto(path.resolve().as_uri(), wait_until="load")

    def _route(self, route: Any) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            self.requests.append(route.request.url)
            route.abort()

    def assert_clean(self) -> None:
        assert self.requests == [], f"the page made network requests: {self.requests}"
        assert self.errors == [], f"the page logged errors: {self.errors}"

    def close(self) -> None:
        self.page.close()


def _isolated_point(page: Any, figure: str, trace: int) -> dict[str, Any]:
    """The point of ``trace`` farthest from every other point of ``figure`` (so a hover or click finds it alone).

    Returns its centre on screen and its index in the trace (from plotly's data bound to the point).
    """
    return page.evaluate("""([figure, trace]) => {
        const traces = [...document.querySelectorAll('#' + figure + ' .scatterlayer .trace')];
        const centre = (el) => {
            const r = el.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2];
        };
        const all = traces.flatMap((t, j) => [...t.querySelectorAll('path.point')].map(el => ({el, j})));
        let best = null;
        for (const p of all.filter(p => p.j === trace)) {
            const [x, y] = centre(p.el);
            let gap = Infinity;
            for (const q of all) {
                if (q !== p) { const [u, v] = centre(q.el); gap = Math.min(gap, Math.hypot(x - u, y - v)); }
            }
            if (!best || gap > best.gap) best = {x, y, gap, index: p.el.__data__.i};
        }
        return best;
    }""", [figure, trace])


def _check_report(browser: Any, path: Path, shot: Path, *, names: list[str], n_words: int) -> OfflinePage:
    """Everything a reader does on the report; returns the open page for more checks."""
    view = OfflinePage(browser, path)
    page = view.page
    page.wait_for_selector("body[data-ready='1']", state="attached")  # every plotly figure drawn
    data = json.loads(page.eval_on_selector("#etm-data", "e => e.textContent"))
    # every topic section, with its name and its top words
    assert page.locator("article.topic").count() == len(names)
    for k, name in enumerate(names):
        article = page.locator(f"#topic-{k}")
        heading = article.locator("h3").inner_text()
        assert heading.startswith(f"Topic {k}") and (name in heading or name == f"topic_{k}")
        assert " ".join(data["topics"][k]["words"][:3]) in heading  # its leading words name an unnamed topic
        assert article.locator("table.words tbody tr").count() == n_words
    # the map: one dot per word and one star per topic
    map_words = data["figures"]["map-figure"]["data"][0]["text"]
    assert page.locator("#map-figure .scatterlayer .trace").count() == 2
    assert page.locator("#map-figure .scatterlayer .trace:nth-child(1) path.point").count() == len(map_words)
    assert page.locator("#map-figure .scatterlayer .trace:nth-child(2) path.point").count() == len(names)
    page.locator("#map").scroll_into_view_if_needed()
    dot = _isolated_point(page, "map-figure", 0)
    page.mouse.move(dot["x"], dot["y"])
    hover = page.locator("#map-figure .hoverlayer .hovertext")
    hover.wait_for()
    assert map_words[dot["index"]] in hover.text_content()  # hover names the word
    star = _isolated_point(page, "map-figure", 1)
    page.mouse.click(star["x"], star["y"])
    page.wait_for_selector("#map-selection h3")
    assert names[star["index"]] in page.inner_text("#map-selection h3")  # a click lists the topic
    assert page.locator("#map-selection li").count() == len(data["topics"][star["index"]]["words"])
    page.screenshot(path=str(shot.with_name(shot.stem + "-map.png")))
    # the search box: a topic's top word -> its nearest words and the topics weighing it
    word = data["topics"][0]["words"][0]
    page.fill("#search-box", word)
    result = page.locator(f'#search-results .result[data-word="{word}"]')
    result.wait_for()
    assert result.locator("ol.near li").count() == 8
    assert result.locator("ol.weighing li a").count() == min(3, len(names))
    i = data["search"]["words"].index(word)
    weighing = [names[k] for k in data["search"]["topics"][i][0::3]]
    assert [a.inner_text() for a in result.locator("ol.weighing li a").all()] == weighing
    page.screenshot(path=str(shot.with_name(shot.stem + "-search.png")))
    result.locator("ol.weighing li a").first.click()
    page.wait_for_selector("article.topic.selected")
    page.fill("#search-box", "qqqxzz")
    page.wait_for_selector("#search-results .note")
    assert "not one of the searchable words" in page.inner_text("#search-results")
    page.screenshot(path=str(shot), full_page=True)
    return view


def _check_ldavis(page: Any, n_topics: int) -> None:
    """The pyLDAvis view drew one circle per topic and answers a hover and a click."""
    circles = page.locator("svg circle.dot")
    circles.first.wait_for()
    assert circles.count() == n_topics
    circles.nth(n_topics - 1).scroll_into_view_if_needed()
    circles.nth(n_topics - 1).hover()
    circles.nth(n_topics - 1).click()
    page.locator("svg text.terms").first.wait_for()


@pytest.fixture(scope="module")
def plain_model(news_workspace: Path) -> dict[str, Path]:
    """An unseeded model trained on a prepared corpus of raw 20 Newsgroups messages."""
    corpus, model = news_workspace / "corpus", news_workspace / "model"
    assert main(["prepare", str(news_workspace / "news.jsonl.gz"), "-o", str(corpus), "--label-field", "label",
                 "--split-field", "split", "--strip-newsgroup", "--min-df", "3", "--max-df", "0.5",
                 "--extra-stop-words", str(STOP_WORDS)]) == 0
    assert main(["train", str(corpus), "-o", str(model), "--num-topics", "5", "--t-hidden-size", "32",
                 "--rho-size", "16", "--epochs", "6", "--batch_size", "50", "--lr", "0.01", "--quiet",
                 "--device", "cpu"]) == 0
    return {"corpus": corpus, "model": model, "raw": news_workspace / "news.jsonl.gz"}


def test_report_of_a_model_offline(browser, plain_model, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.html"
    assert main(["report", str(plain_model["model"]), "--corpus", str(plain_model["corpus"]), "--documents",
                 str(plain_model["raw"]), "-o", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["output"] == str(out) and result["bytes"] == out.stat().st_size
    names = [f"topic_{k}" for k in range(5)]
    view = _check_report(browser, out, tmp_path / "report.png", names=names, n_words=10)
    assert view.page.locator(".snippet:not(.bag)").count() >= 5  # snippets from the raw messages
    assert view.page.locator(".snippet mark").count() > 0  # with the topic's words marked
    view.page.locator("#intertopic").scroll_into_view_if_needed()
    _check_ldavis(view.page, 5)
    view.page.screenshot(path=str(tmp_path / "report-ldavis.png"))
    view.assert_clean()
    view.close()


def test_report_of_a_seeded_model_shows_the_seed_names(browser, news_workspace: Path, tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.json"
    seeds.write_text(json.dumps(SEEDS), encoding="utf-8")
    model = tmp_path / "seeded"
    assert main(["train", str(news_workspace / "news.jsonl.gz"), "-o", str(model), "--seeds", str(seeds),
                 "--free-topics", "2", "--split-field", "split", "--strip-newsgroup", "--min-df", "3",
                 "--max-df", "0.5", "--extra-stop-words", str(STOP_WORDS), "--t-hidden-size", "32",
                 "--rho-size", "16", "--epochs", "6", "--batch_size", "50", "--quiet", "--device", "cpu"]) == 0
    out = tmp_path / "seeded.html"
    assert main(["report", str(model), "-o", str(out)]) == 0  # its corpus is model/corpus, its text the raw file
    names = [*SEEDS, "free_0", "free_1"]
    view = _check_report(browser, out, tmp_path / "seeded.png", names=names, n_words=10)
    assert view.page.locator("article.topic .badge").count() == 3
    for k, words in enumerate(SEEDS.values()):
        assert view.page.inner_text(f"#topic-{k} .seeds").endswith(": " + ", ".join(words))
    assert view.page.locator(".snippet:not(.bag)").count() >= 5  # text found through the corpus's source
    _check_ldavis(view.page, 5)
    view.assert_clean()
    view.close()


def test_ldavis_export_works_offline(browser, plain_model, tmp_path: Path) -> None:
    out = tmp_path / "figures"
    assert main(["plot", str(plain_model["model"]), "-o", str(out), "--corpus", str(plain_model["corpus"]),
                 "--ldavis"]) == 0
    html = (out / "ldavis.html").read_text(encoding="utf-8")
    assert not re.search(r"<(script|img|iframe)[^>]*\ssrc=|<link[^>]*href=", html)  # everything inline
    view = OfflinePage(browser, out / "ldavis.html")
    _check_ldavis(view.page, 5)
    view.page.screenshot(path=str(tmp_path / "ldavis.png"), full_page=True)
    view.assert_clean()
    view.close()
