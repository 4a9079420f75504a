"""Scale: documents per second and peak memory of training and inference from 10k to 1M documents.

Why this exists: etm claims that training reads sharded corpora from disk with
memory that does not grow with the corpus, and that data-parallel training
runs on PyTorch's own DistributedDataParallel. This script measures both on
this machine and prints markdown tables:

1. Corpora. Raw 20 Newsgroups (all 18,846 messages, headers/quotes/signatures
   stripped) is counted over a 50k-word vocabulary (``max_features=50000``).
   Corpora of 10k, 100k and 1M documents are then made by sampling and
   recombining those documents: each new document is one random half of the
   tokens of one real message plus one random half of another's, written
   chunk by chunk into a sharded corpus with :func:`etm.shards.write_shards`
   (nothing holds the whole corpus). 2,000 more such documents form the
   validation split.
2. Streaming preparation of raw text (``etm prepare --shard-size``) on a raw
   corpus of recombined message texts (two passes, tokenising in Python).
3. Training: one epoch of ``etm train`` (K=50, H=800, E=300, batch 1000, the
   authors' defaults) with one process (2 threads) and with ``--nproc 2``
   (torchrun, gloo, 1 thread each), and inference with ``etm transform`` to
   ``.npy``. Each command runs as its own process under ``/usr/bin/time``, so
   peak memory is the peak resident set of the largest process.
4. Parity: the demo's 20NG corpus trained with 1 and with 2 processes; best
   validation perplexity of each.
5. A projection of one epoch on the paper's NYT corpus (1.8M documents) for
   1, 2 and 8 processes, from a step-time model fitted to measurements here
   (see :func:`projection`).

Usage::

    .venv/bin/python benchmarks/scale.py [--sizes 10k,100k,1m] [--work DIR] [--parity-epochs 100]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"

SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}
VOCAB = 50_000
N_VALID = 2_000
CHUNK = 50_000
NYT_DOCS = 1_800_000
MODEL = ["--num-topics", "50", "--t-hidden-size", "800", "--rho-size", "300", "--batch-size", "1000"]
ETM = [sys.executable, "-m", "etm"]


# --------------------------------------------------------------------------- corpora
def base_counts(data: Path) -> tuple[sp.csr_matrix, list[str], list[str]]:
    """All 20NG messages over a 50k vocabulary, plus their cleaned texts (for the raw-text corpus)."""
    from etm.preprocessing import Preprocessor, strip_newsgroup_text

    with gzip.open(data / "20news-bydate.jsonl.gz", "rt", encoding="utf-8") as fh:
        texts = [strip_newsgroup_text(json.loads(line)["text"]) for line in fh]
    pre = Preprocessor(max_features=VOCAB)
    counts = pre.fit_transform(texts).tocsr()
    keep = np.diff(counts.indptr) > 1
    return counts[keep], pre.vocabulary_, [t for t, k in zip(texts, keep) if k]


def recombined(halves: tuple[sp.csr_matrix, sp.csr_matrix], n: int, seed: int) -> Iterator[sp.csr_matrix]:
    """``n`` documents, each a random first half of one message plus a random second half of another."""
    first, second = halves
    rng = np.random.default_rng(seed)
    for start in range(0, n, CHUNK):
        k = min(CHUNK, n - start)
        a, b = rng.integers(first.shape[0], size=k), rng.integers(first.shape[0], size=k)
        yield (first[a] + second[b]).tocsr()


def build_bow(size: str, halves: Any, vocab: list[str], work: Path) -> Path:
    from etm.shards import write_shards

    n = SIZES[size]
    out = work / f"bow-{size}"
    if (out / "meta.json").is_file():
        return out
    write_shards(out, vocab, recombined(halves, n, seed=n), n_train=n, valid=recombined(halves, N_VALID, seed=1),
                 shard_size=max(n // 10, 2_500), settings={"source": "recombined 20NG halves (benchmarks/scale.py)"})
    return out


def build_raw(n: int, texts: list[str], work: Path) -> Path:
    """A JSONL.gz of ``n`` recombined message texts (first half of one's lines, second half of another's)."""
    out = work / f"raw-{n}.jsonl.gz"
    if out.is_file():
        return out
    rng = random.Random(n)
    lines = [t.split("\n") for t in texts]
    tmp = out.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1) as fh:
        for i in range(n):
            a, b = lines[rng.randrange(len(lines))], lines[rng.randrange(len(lines))]
            text = "\n".join(a[: len(a) // 2 + 1] + b[len(b) // 2 :])
            fh.write(json.dumps({"text": text, "split": "valid" if i % 50 == 0 else "train"}) + "\n")
    tmp.replace(out)
    return out


# --------------------------------------------------------------------------- measuring commands
def timed(cmd: Sequence[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` under /usr/bin/time; wall seconds, peak RSS (MiB) of its largest process, and its stdout."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "ETM_MAXRSS_KB=%M", *cmd], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    rss = [int(m) for m in re.findall(r"ETM_MAXRSS_KB=(\d+)", proc.stderr)]
    return {"wall": wall, "peak_mib": max(rss) / 1024 if rss else float("nan"), "stdout": proc.stdout}


def train_run(corpus: Path, out: Path, nproc: int, epochs: int = 1, extra: Sequence[str] = ()) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    threads = ["--threads", "2"] if nproc == 1 else []
    r = timed([*ETM, "train", str(corpus), "-o", str(out), "--epochs", str(epochs), "--quiet", "--json",
               "--checkpoint-every", "1000", "--device", "cpu", "--nproc", str(nproc), *threads, *MODEL, *extra])
    history = json.loads((out / "history.json").read_text())
    r["epoch_seconds"] = [h["seconds"] for h in history]
    r["best_valid_perplexity"] = min(h.get("valid_perplexity", float("inf")) for h in history)
    r["epochs"] = len(history)
    return r


# --------------------------------------------------------------------------- step-time model for the projection
def step_model(corpus: Path, threads: int = 1, steps: int = 8) -> dict[str, float]:
    """Median training-step seconds of one 1-thread process at local batches of 125, 500 and 1000 documents."""
    import torch

    from etm.corpus.batching import ShardedBatches
    from etm.device import reuse_freed_memory
    from etm.model import ETM as Model
    from etm.model import SparseBatch
    from etm.shards import ShardedCorpus

    reuse_freed_memory()
    torch.set_num_threads(threads)
    sc = ShardedCorpus.load(corpus)
    torch.manual_seed(0)
    model = Model(50, len(sc.vocabulary), 800, 300, enc_drop=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=0.005, weight_decay=1.2e-6, fused=True)
    out: dict[str, float] = {}
    for local in (1000, 500, 125):
        times = []
        for i, rows in enumerate(ShardedBatches(sc.parts["train"], 0).epoch(0, local)):
            if i == steps + 3:
                break
            t = time.perf_counter()
            batch = SparseBatch.from_scipy(rows)
            opt.zero_grad(set_to_none=True)
            recon, kld = model(batch, batch.normalized())
            (recon + kld).backward()
            opt.step()
            if i >= 3:
                times.append(time.perf_counter() - t)
        out[f"step_{local}"] = statistics.median(times)
    out["params"] = float(sum(p.numel() for p in model.parameters()))
    return out


def allreduce_seconds(n_floats: int) -> float:
    """Median seconds of one all-reduce of ``n_floats`` float32 between 2 local gloo processes."""
    script = (
        "import os, time, statistics, torch, torch.distributed as dist\n"
        "dist.init_process_group('gloo'); torch.set_num_threads(1)\n"
        f"t = torch.ones({n_floats}); ts = []\n"
        "for i in range(6):\n"
        "    dist.barrier(); s = time.perf_counter(); dist.all_reduce(t); ts.append(time.perf_counter() - s)\n"
        "if dist.get_rank() == 0: print('ALLREDUCE', statistics.median(ts[1:]))\n"
        "dist.destroy_process_group()\n"
    )
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"etm-allreduce-{os.getpid()}.py"
    path.write_text(script)
    try:
        proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                               str(path)], capture_output=True, text=True, timeout=600)
    finally:
        path.unlink(missing_ok=True)
    match = re.search(r"ALLREDUCE ([0-9.e-]+)", proc.stdout)
    if not match:
        raise RuntimeError(f"all-reduce timing failed:\n{proc.stderr[-2000:]}")
    return float(match.group(1))


def projection(model: dict[str, float], local_allreduce: float, rates: dict[int, float],
               network_gbit: float = 10.0) -> list[tuple[str, float, str]]:
    """Epoch time on 1.8M documents for 1, 2 and 8 processes.

    1 and 2 processes: the measured 1M-document rates of this machine. 8
    processes, each a 1-thread process like the ``--nproc 2`` workers, one
    per machine: a step costs the measured 1-thread step at the process's
    share of the global batch, plus a ring all-reduce of every gradient,
    2 (P-1)/P x 4 bytes x parameters over ``network_gbit``. Two global
    batches: the authors' 1000 (125 documents a process) and 8000 (1000 a
    process, 8x fewer steps; a different optimisation, to be validated).
    """
    rows = []
    for p in (1, 2):
        if p in rates:
            rows.append((f"{p} process{'es' if p > 1 else ''}, this machine, batch 1000 (measured rate)",
                         NYT_DOCS / rates[p], f"{rates[p]:,.0f} docs/s measured on 1M documents"))
    network = 2 * 7 / 8 * 4 * model["params"] / (network_gbit * 1e9 / 8)
    for batch, local in ((1000, 125), (8000, 1000)):
        compute = model[f"step_{local}"]
        rows.append((f"8 processes on 8 machines ({network_gbit:g} Gbit/s), batch {batch}",
                     NYT_DOCS / batch * (compute + network),
                     f"step = {compute * 1e3:.0f} ms compute ({local} docs, 1 thread) + {network * 1e3:.0f} ms "
                     "all-reduce"))
    return rows


# --------------------------------------------------------------------------- report
def fmt_rate(docs: int, seconds: float) -> str:
    return f"{docs / seconds:,.0f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10k,100k,1m", help=f"comma-separated, from {', '.join(SIZES)}")
    parser.add_argument("--prepare-docs", type=int, default=100_000,
                        help="documents of the raw-text corpus for the streaming-prepare row (0 = skip)")
    parser.add_argument("--parity-epochs", type=int, default=100,
                        help="epochs (with patience 10) of the 1- vs 2-process 20NG parity run (0 = skip)")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("ETM_SHARED_DATA", DEFAULT_DATA)))
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "runs" / "scale",
                        help="where corpora and models go (several GB for 1m)")
    parser.add_argument("--projection-only", action="store_true",
                        help="only the step timings and all-reduce of the projection (on the largest corpus, built "
                             "if missing), with training rates from --rates")
    parser.add_argument("--rates", default=None, metavar="R1,R2",
                        help="docs/s of 1 and 2 processes measured earlier, for --projection-only")
    args = parser.parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    if any(s not in SIZES for s in sizes):
        parser.error(f"unknown size in {sizes}; choose from {list(SIZES)}")
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f}s] {msg}", file=sys.stderr, flush=True)

    import torch

    from etm.corpus import split_halves

    print(f"Machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
          f"Python {platform.python_version()}; load average at start "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    log("counting raw 20NG over a 50k vocabulary")
    counts, vocab, texts = base_counts(args.data)
    first, second, _ = split_halves(counts, np.random.default_rng(0))
    results: dict[str, dict[str, Any]] = {}
    if args.projection_only:
        build_bow(sizes[-1], (first, second), vocab, args.work)
        args.prepare_docs = args.parity_epochs = 0
    for size in sizes if not args.projection_only else []:
        log(f"building {size}")
        t = time.perf_counter()
        corpus = build_bow(size, (first, second), vocab, args.work)
        build = time.perf_counter() - t
        disk = sum(f.stat().st_size for f in (corpus / "shards").iterdir()) / 2**20
        res: dict[str, Any] = {"build_seconds": build, "disk_mib": disk}
        for nproc in (1, 2):
            log(f"training {size}, {nproc} process(es)")
            res[f"train{nproc}"] = train_run(corpus, args.work / f"model-{size}-{nproc}", nproc)
        log(f"inference {size}")
        r = timed([*ETM, "transform", str(args.work / f"model-{size}-1"), str(corpus), "-o",
                   str(args.work / f"theta-{size}.npy"), "--json", "--threads", "2", "--device", "cpu"])
        r["summary"] = json.loads(r["stdout"])
        res["infer"] = r
        (args.work / f"theta-{size}.npy").unlink(missing_ok=True)
        results[size] = res

    prepare = None
    if args.prepare_docs:
        log(f"streaming prepare of {args.prepare_docs} raw documents")
        raw = build_raw(args.prepare_docs, texts, args.work)
        r = timed([*ETM, "prepare", str(raw), "-o", str(args.work / "prepared-raw"), "--split-field", "split",
                   "--max-features", str(VOCAB), "--shard-size", "20000", "--quiet", "--json"])
        prepare = {**r, "summary": json.loads(r["stdout"])}

    parity = None
    if args.parity_epochs:
        log("parity on the demo's 20NG corpus")
        demo = args.work / "20ng-demo"
        if not (demo / "meta.json").is_file():
            subprocess.run([*ETM, "prepare", str(args.data / "20news-bydate.jsonl.gz"), "-o", str(demo),
                            "--label-field", "label", "--split-field", "split", "--strip-newsgroup", "--min-df", "10",
                            "--max-df", "0.5", "--extra-stop-words",
                            str(REPO_ROOT / "examples" / "stopwords_extra.txt"), "--quiet"],
                           check=True, capture_output=True)
        demo_model = ["--num-topics", "20", "--patience", "10"]
        parity = {}
        for nproc in (1, 2):
            out = args.work / f"parity-{nproc}"
            shutil.rmtree(out, ignore_errors=True)
            threads = ["--threads", "2"] if nproc == 1 else []
            r = timed([*ETM, "train", str(demo), "-o", str(out), "--epochs", str(args.parity_epochs), "--quiet",
                       "--json", "--device", "cpu", "--nproc", str(nproc), *threads, *demo_model])
            history = json.loads((out / "history.json").read_text())
            best = min(history, key=lambda h: h["valid_perplexity"])
            parity[nproc] = {"wall": r["wall"], "epochs": len(history), "best_epoch": best["epoch"],
                             "valid_perplexity": best["valid_perplexity"]}

    model = None
    if "1m" in results or sizes:
        log("step-time model and all-reduce timing for the projection")
        model = step_model(args.work / f"bow-{sizes[-1]}")
        model["allreduce_2local"] = allreduce_seconds(int(model["params"]))

    # ---------------------------------------------------------------- tables
    if results:
        print()
        print("| documents | shards on disk | training, 1 process (2 threads) | peak memory "
              "| training, 2 processes (torchrun, 1 thread each) | peak memory per process "
              "| inference (`etm transform` → .npy) | peak memory |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for size, res in results.items():
            n = SIZES[size]
            t1, t2, inf = res["train1"], res["train2"], res["infer"]
            print(f"| {n:,} | {res['disk_mib']:,.0f} MiB | {fmt_rate(n, t1['epoch_seconds'][0])} docs/s "
                  f"(epoch {t1['epoch_seconds'][0]:,.0f} s) | {t1['peak_mib']:,.0f} MiB "
                  f"| {fmt_rate(n, t2['epoch_seconds'][0])} docs/s (epoch {t2['epoch_seconds'][0]:,.0f} s) "
                  f"| {t2['peak_mib']:,.0f} MiB | {inf['summary']['documents_per_second']:,.0f} docs/s "
                  f"| {inf['peak_mib']:,.0f} MiB |")
        print()
        print(f"- Corpora: recombined halves of raw 20NG messages over a {VOCAB:,}-word vocabulary, plus {N_VALID:,} "
              "validation documents (validated once at the end of the epoch; included in the epoch time). "
              "Model K=50, H=800, E=300, batch 1000 (the authors' defaults). Docs/s = training documents / epoch "
              "seconds from `history.json`; inference docs/s from `etm transform --json` (all documents, "
              "reading, inference and writing). Peak memory: `/usr/bin/time`'s maximum resident set of the largest "
              "process (the 2-process total is about twice the per-process figure).")
    if prepare is not None:
        s = prepare["summary"]
        n = s["report"]["documents_read"]
        print(f"- Streaming `etm prepare --shard-size` of {n:,} raw recombined message texts (two passes, "
              f"vocabulary {s['vocabulary_size']:,}): {prepare['wall']:,.0f} s, {n / prepare['wall']:,.0f} docs/s, "
              f"peak memory {prepare['peak_mib']:,.0f} MiB.")
    if parity is not None:
        p1, p2 = parity[1], parity[2]
        diff = 100 * (p2["valid_perplexity"] - p1["valid_perplexity"]) / p1["valid_perplexity"]
        print()
        print("| 20NG (the demo's corpus, K=20, patience 10) | epochs run | best epoch | best validation perplexity "
              "| wall time |")
        print("|---|---:|---:|---:|---:|")
        for k, label in ((1, "1 process, 2 threads"), (2, "2 processes (torchrun, gloo), 1 thread each")):
            p = parity[k]
            print(f"| {label} | {p['epochs']} | {p['best_epoch']} | {p['valid_perplexity']:.1f} | {p['wall']:.0f} s |")
        print(f"\n- 2 processes vs 1: {diff:+.2f}% validation perplexity (target: within 2%).")
    if model is not None:
        if args.projection_only:
            rates = dict(zip((1, 2), map(float, args.rates.split(",")))) if args.rates else {}
        else:
            rates = {p: SIZES[sizes[-1]] / results[sizes[-1]][f"train{p}"]["epoch_seconds"][0] for p in (1, 2)}
        print()
        print(f"Projection of one epoch on NYT ({NYT_DOCS:,} documents, V={VOCAB:,}, K=50, batch 1000):")
        print()
        print("| setting | epoch | basis |")
        print("|---|---:|---|")
        for label, seconds, basis in projection(model, model["allreduce_2local"], rates):
            print(f"| {label} | {seconds / 60:,.0f} min | {basis} |")
        print()
        print(f"- One-thread step on the {sizes[-1]} corpus: {model['step_125'] * 1e3:.0f} ms at 125 documents, "
              f"{model['step_500'] * 1e3:.0f} ms at 500, {model['step_1000'] * 1e3:.0f} ms at 1000: most of a step is "
              "the same whatever the batch (beta over the vocabulary, its gradients, Adam over "
              f"{model['params'] / 1e6:.1f}M parameters), so splitting a batch of 1000 over more processes saves "
              "little. All-reduce of all gradients between 2 local gloo processes: "
              f"{model['allreduce_2local'] * 1e3:.0f} ms.")
    print(f"\nTotal wall time {time.perf_counter() - started:,.0f} s; load average at end "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
