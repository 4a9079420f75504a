"""The Python API in one page: raw 20 Newsgroups text -> topics, proportions, metrics, model files.

Usage::

    python examples/quickstart.py [--data ../shared/data] [--epochs 60]

Reads ``20news-bydate.jsonl.gz`` from the shared data folder; without it,
falls back to scikit-learn's ``fetch_20newsgroups`` (which downloads).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import tempfile
from pathlib import Path

from etm import Preprocessor, TopicModel


def load_20newsgroups(data: Path) -> tuple[list[str], list[str]]:
    """Training and test texts of 20 Newsgroups."""
    path = data / "20news-bydate.jsonl.gz"
    if path.is_file():
        train, test = [], []
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                record = json.loads(line)
                (train if record["split"] == "train" else test).append(record["text"])
        return train, test
    from sklearn.datasets import fetch_20newsgroups

    return fetch_20newsgroups(subset="train").data, fetch_20newsgroups(subset="test").data


def main() -> None:
    default = Path(os.environ.get("ETM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=default)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--topics", type=int, default=20)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N training messages")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    train, test = load_20newsgroups(args.data)
    if args.limit:
        train, test = train[: args.limit], test[: args.limit // 4]
    extra = (Path(__file__).parent / "stopwords_extra.txt").read_text().split()
    model = TopicModel(
        args.topics,
        epochs=args.epochs,
        patience=10,
        hidden_size=800 if not args.limit else 64,
        preprocessor=Preprocessor(
            min_df=10 if not args.limit else 3, max_df=0.5, strip_newsgroup=True, extra_stop_words=extra
        ),
        verbose=True,
    )
    model.fit(train)
    for k, words in enumerate(model.get_topics(8)):
        print(f"topic {k:2d}: {' '.join(words)}")

    theta, report = model.transform_with_report(test[:5])
    print(f"\ntopic proportions of 5 test messages {theta.shape}; unknown tokens ignored: {report['unknown_tokens']}")
    for row in theta:
        top = row.argsort()[::-1][:2]
        print("  " + ", ".join(f"topic {k} ({row[k]:.2f})" for k in top))

    scores = model.evaluate(train, completion=test)
    print("\n" + "\n".join(f"{name}: {value:.4f}" for name, value in scores.items()))

    with tempfile.TemporaryDirectory() as tmp:
        model.save(tmp)
        again = TopicModel.load(tmp)
        print(f"\nsaved and reloaded: {sorted(p.name for p in Path(tmp).iterdir())}; same topics: "
              f"{again.get_topics(8) == model.get_topics(8)}")
        figures = [model.plot_topics(Path(tmp) / "topics.png"), model.plot_training(Path(tmp) / "training.png"),
                   model.plot_embeddings(Path(tmp) / "map.png")]
        print(f"figures: {', '.join(f.name for f in figures)}")

    word = model.get_topics(1)[0][0]
    print(f"nearest words of {word!r} in the embedding space: "
          + ", ".join(w for w, _ in model.nearest_words(word, 5)))


if __name__ == "__main__":
    main()
