"""Do a seeded model's free topics find the themes nobody seeded? Raw 20 Newsgroups, half the groups seeded.

Why this script exists: "seed what you care about, free topics find the rest" is the promise of seeded
topics (issue 16). With every newsgroup seeded (``benchmarks/seeded.py``) nothing is left for the free
topics, so this script seeds every other newsgroup of ``examples/seeds/20ng.json`` (10 groups), adds 10 free
topics, trains ``TopicModel`` with its defaults (plus ``--set name=value``) on the training split with the
demo's preprocessing, and prints every topic's top words and, for each *unseeded* group, where its training
documents go (their most probable topic). A free topic "finds" a group when it is the most probable topic of
at least 40% of the group's documents.

    python benchmarks/free_topics.py [--data ../shared/data] [--set seed_schedule=decay] [--threads 1]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import torch

from etm import Preprocessor, TopicModel
from etm.corpus.readers import read_jsonl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _baselines import default_data  # noqa: E402
from recipe import parse_value  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=default_data())
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="TopicModel parameter")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=2019)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    params = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}

    raw = read_jsonl(args.data / "20news-bydate.jsonl.gz", label_field="label", split_field="split")
    seeds = json.loads((ROOT / "examples" / "seeds" / "20ng.json").read_text(encoding="utf-8"))
    groups = list(seeds)
    seeded, unseeded = {g: seeds[g] for g in groups[::2]}, groups[1::2]
    extra = [w.strip() for w in (ROOT / "examples" / "stopwords_extra.txt").read_text().splitlines()
             if w.strip() and not w.startswith("#")]
    train = [i for i, s in enumerate(raw.splits) if s == "train"]
    texts, labels = [raw.texts[i] for i in train], [raw.labels[i] for i in train]
    model = TopicModel(seed_topics=seeded, n_free_topics=10, random_state=args.seed, device="cpu",
                       preprocessor=Preprocessor(min_df=10, max_df=0.5, strip_newsgroup=True, extra_stop_words=extra),
                       **params)
    model.fit(texts)
    print(f"settings: defaults + {params}; {model.n_iter_} epochs (best {model.best_epoch_})\n")
    for name, words in zip(model.topic_names_, model.get_topics(10)):
        print(f"{name:26s} {' '.join(words)}")
    best = model.transform(texts).argmax(axis=1)
    print("\n| unseeded group | its documents' most probable topic | share | next | share |\n|---|---|---|---|---|")
    found = {}
    for g in unseeded:
        rows = [i for i, label in enumerate(labels) if label == g]
        (top, n1), (nxt, n2) = collections.Counter(model.topic_names_[b] for b in best[rows]).most_common(2)
        print(f"| {g} | {top} | {n1 / len(rows):.2f} | {nxt} | {n2 / len(rows):.2f} |")
        if top.startswith("free_") and n1 / len(rows) >= 0.4:
            found[g] = top
    print(f"\nunseeded groups found by a free topic: {len(found)} of {len(unseeded)} "
          f"({len(set(found.values()))} distinct free topics)")
    own = []
    for g in seeded:
        rows = [i for i, label in enumerate(labels) if label == g]
        own.append(sum(model.topic_names_[b] == g for b in best[rows]) / len(rows))
    unseeded_rows = [i for i, label in enumerate(labels) if label in unseeded]
    to_free = sum(model.topic_names_[b].startswith("free_") for b in best[unseeded_rows]) / len(unseeded_rows)
    print(f"seeded groups' documents whose most probable topic is their own: {sum(own) / len(own):.3f} (mean over "
          f"the {len(own)} groups); unseeded groups' documents whose most probable topic is a free one: {to_free:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
