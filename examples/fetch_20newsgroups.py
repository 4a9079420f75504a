"""Write 20 Newsgroups as JSONL.gz (id, split, label, text) using scikit-learn's downloader.

Only for machines without ``../shared/data``: ``make demo`` uses the shared copy
when it exists. Usage: ``python examples/fetch_20newsgroups.py OUT.jsonl.gz``.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

from sklearn.datasets import fetch_20newsgroups


def main(out: str) -> None:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as fh:
        for split in ("train", "test"):
            data = fetch_20newsgroups(subset=split, remove=())
            for i, (text, target) in enumerate(zip(data.data, data.target)):
                record = {"id": f"{split}/{i}", "split": split, "label": data.target_names[target], "text": text}
                fh.write(json.dumps(record) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    main(sys.argv[1])
