"""Size and build time of the HTML report (`etm report`) for a large model: K=100 topics, V=50,000 words.

Why this exists: the report inlines everything (plotly.js alone is about
4.8 MB), so its size is decided by what it lists per topic and per word. The
issue asks for at most 10 MB at K=100, V=50k; the caps (`map_words`,
`search_words`, `max_documents`) keep it there. This script builds a synthetic
corpus of that size (documents drawn from 100 Zipf-shaped topics over
pseudo-words), trains an ETM on it briefly, writes the report with the
default caps and prints a table: page size, what takes the space, build
time, and (with --browser) the time Chromium takes to open it offline.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/report_size.py [--topics 100] [--words 50000] [--docs 20000]
        [--threads 2] [--browser] [--model runs/20ng-model --corpus runs/20ng-corpus]

With ``--model`` (and ``--corpus``), the report of that saved model is measured instead.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from etm import Corpus, TopicModel, open_corpus
from etm.report import write_report


def pseudo_words(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct lowercase pseudo-words of 4 to 10 letters, about as long as real vocabulary words."""
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        lengths = rng.integers(4, 11, size=n)
        codes = rng.integers(97, 123, size=int(lengths.sum()), dtype=np.uint8).tobytes().decode("ascii")
        ends = np.cumsum(lengths)
        for start, end in zip(ends - lengths, ends):
            w = codes[start:end]
            if w not in seen and len(out) < n:
                seen.add(w)
                out.append(w)
    return out


def synthetic_corpus(n_topics: int, n_words: int, n_docs: int, seed: int = 0) -> Corpus:
    """Documents of about 120 tokens, each from 1-3 of ``n_topics`` Zipf topics over a shared background."""
    rng = np.random.default_rng(seed)
    vocab = pseudo_words(n_words, rng)
    zipf = 1.0 / np.arange(1, n_words + 1) ** 1.05
    topics = np.empty((n_topics, n_words))
    for k in range(n_topics):
        topics[k] = zipf[np.argsort(rng.permutation(n_words))]  # each topic ranks the words differently
        topics[k] /= topics[k].sum()
    cdf = np.cumsum(topics, axis=1)
    lengths = rng.integers(40, 200, size=n_docs)
    doc = np.repeat(np.arange(n_docs), lengths)  # each token's document
    mixes = np.cumsum(rng.dirichlet(np.full(n_topics, 0.05), size=n_docs), axis=1)
    z = np.empty(doc.size, dtype=np.int64)  # each token's topic, by inverse CDF, a block of documents at a time
    for start in range(0, doc.size, 200_000):
        block = slice(start, start + 200_000)
        u = rng.random(doc[block].size)[:, None] * mixes[doc[block], -1:]
        z[block] = np.minimum((mixes[doc[block]] < u).sum(axis=1), n_topics - 1)
    words = np.empty(doc.size, dtype=np.int64)
    for k in range(n_topics):
        at = np.flatnonzero(z == k)
        words[at] = np.searchsorted(cdf[k], rng.random(at.size) * cdf[k, -1])
    words = np.minimum(words, n_words - 1)
    counts = sp.csr_matrix((np.ones(doc.size, dtype=np.float32), (doc, words)), shape=(n_docs, n_words))
    counts.sum_duplicates()
    return Corpus(counts, vocab, doc_ids=[f"doc {d}" for d in range(n_docs)])


def parts_of(page: str) -> dict[str, int]:
    """Bytes of each inlined part of the page, by what it holds."""
    sizes: dict[str, int] = {}
    for match in re.finditer(r"<script([^>]*)>(.*?)</script>", page, flags=re.S):
        attributes, body = match.groups()
        found = re.search(r'id="([^"]+)"', attributes)
        head = body[:300]
        name = (f"data: {found.group(1)}" if found else "plotly.js" if "plotly.js" in head
                else "d3" if "d3js.org" in head else "LDAvis.js" if "LDAvis" in head else "other scripts")
        sizes[name] = sizes.get(name, 0) + len(body.encode("utf-8"))
    sizes["HTML and CSS"] = len(page.encode("utf-8")) - sum(sizes.values())
    return sizes


def open_in_browser(path: Path) -> float:
    """Seconds until Chromium (offline, no requests allowed) has drawn every chart of the page."""
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = browser.new_page()
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort())
        t0 = time.perf_counter()
        page.goto(path.resolve().as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=300_000)
        seconds = time.perf_counter() - t0
        browser.close()
    return seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topics", type=int, default=100)
    ap.add_argument("--words", type=int, default=50_000)
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--browser", action="store_true", help="also time opening the page in Chromium")
    ap.add_argument("--model", default=None, help="measure the report of this saved model instead")
    ap.add_argument("--corpus", default=None, help="with --model: its corpus directory")
    ap.add_argument("--output", default=None, help="where to write the page (default: a temporary directory)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if args.model:
        est = TopicModel.load(args.model, device="cpu")
        corpus = open_corpus(args.corpus) if args.corpus else None
        what = f"{args.model} (K={len(est.topic_names_)}, V={len(est.vocabulary_)})"
    else:
        corpus = synthetic_corpus(args.topics, args.words, args.docs).split(valid_size=0.05, test_size=0.05,
                                                                            random_state=0)
        est = TopicModel(args.topics, epochs=args.epochs, batch_size=args.batch_size, device="cpu",
                         random_state=0).fit(corpus)
        what = f"synthetic K={args.topics}, V={args.words}, {args.docs} documents, {args.epochs} epochs"
    setup = time.perf_counter() - t0
    out = Path(args.output) if args.output else Path(tempfile.mkdtemp()) / "report.html"
    t0 = time.perf_counter()
    write_report(est, out, corpus)
    build = time.perf_counter() - t0
    page = out.read_text(encoding="utf-8")
    print(f"report of {what}: {out}")
    print(f"(model ready in {setup:.0f} s; the report's default caps: map_words=2000, search_words=5000, "
          "max_documents=20000, pyLDAvis over the 10000 most frequent words)\n")
    print("| part | MB |\n|---|---|")
    for name, size in sorted(parts_of(page).items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {size / 1e6:.2f} |")
    print(f"| **page** | **{out.stat().st_size / 1e6:.2f}** |\n")
    print(f"build: {build:.1f} s")
    if args.browser:
        print(f"Chromium, offline, until every chart is drawn: {open_in_browser(out):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
