"""Seeded topics in one page: name the themes you care about, get them back with their names.

Usage::

    python examples/seeded_topics.py [--data ../shared/data] [--seeds examples/seeds/20ng.json] [--epochs 60]

Trains on the training messages of raw 20 Newsgroups with one seeded topic per newsgroup (the seed words in
``examples/seeds/20ng.json``) plus free topics, prints the named topics, labels a few test messages and
reports how often the label is the message's newsgroup.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
from pathlib import Path

from etm import Preprocessor, TopicModel

HERE = Path(__file__).resolve().parent


def main() -> None:
    default = Path(os.environ.get("ETM_SHARED_DATA", HERE.parents[1] / "shared" / "data"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=default)
    ap.add_argument("--seeds", type=Path, default=HERE / "seeds" / "20ng.json")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--free-topics", type=int, default=10)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N training messages")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    train, test, test_labels = [], [], []
    with gzip.open(args.data / "20news-bydate.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["split"] == "train":
                train.append(rec["text"])
            else:
                test.append(rec["text"])
                test_labels.append(rec["label"])
    if args.limit:  # evenly spaced, so that every newsgroup is represented (the file is sorted by group)
        step, test_step = max(1, len(train) // args.limit), max(1, len(test) // (args.limit // 4))
        train = train[::step][: args.limit]
        test, test_labels = test[::test_step][: args.limit // 4], test_labels[::test_step][: args.limit // 4]

    extra = (HERE / "stopwords_extra.txt").read_text().split()
    model = TopicModel(
        seed_topics=args.seeds,                # or a dict: {"sci.space": ["space", "nasa", ...], ...}
        n_free_topics=args.free_topics,        # topics left free to catch other themes
        epochs=args.epochs,
        patience=10,
        hidden_size=800 if not args.limit else 64,
        preprocessor=Preprocessor(min_df=10 if not args.limit else 3, max_df=0.5, strip_newsgroup=True,
                                  extra_stop_words=extra),
    )
    model.fit(train)
    for name, words in zip(model.topic_names_, model.get_topics(8)):
        print(f"{name:26s} {' '.join(words)}")

    labels, share = model.predict_with_proportion(test, threshold=0.1)
    for text, label, p, truth in list(zip(test, labels, share, test_labels))[:5]:
        subject = next((ln for ln in text.splitlines() if ln.startswith("Subject:")), "")[:60]
        print(f"{label:26s} {p:.2f}  (newsgroup {truth})  {subject}")
    hits = sum(lab == truth for lab, truth in zip(labels, test_labels))
    print(f"\nlabel = newsgroup for {hits} of {len(test)} test messages ({hits / len(test):.1%})")


if __name__ == "__main__":
    main()
