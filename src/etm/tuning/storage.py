"""Where a study lives: the embedded journal file in the study directory, or any database Optuna supports.

The default is Optuna's ``JournalFileBackend`` in ``STUDY_DIR/study.journal``:
an append-only log that several processes on one machine share through a
file lock, where every finished trial is written before the next one starts
(so Ctrl-C, a crash or ``kill -9`` loses only the trials running then, which
are queued again). ``storage="postgresql://..."`` (or ``mysql://``,
``sqlite:///``, any SQLAlchemy URL; ``redis://`` for Optuna's Redis journal)
shares one study between machines; database storages get Optuna's heartbeat,
so a trial whose machine died is failed and queued again after
:data:`GRACE_PERIOD` seconds.

A study records in its user attributes the corpus it was created with (a
fingerprint, :func:`corpus_fingerprint`), its objective and search space; a
run with another corpus is refused, naming both.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from etm.corpus import CorpusSource

logger = logging.getLogger(__name__)

__all__ = ["StorageSpec", "corpus_fingerprint", "open_storage", "mask_url", "JOURNAL_FILE"]

#: The embedded storage's file in the study directory.
JOURNAL_FILE = "study.journal"
#: Database storages: seconds between a running trial's heartbeats, and silence after which it is failed and retried.
HEARTBEAT_INTERVAL = 30
GRACE_PERIOD = 120
#: How many times a trial whose process died or was interrupted is queued again.
MAX_RETRY = 3


def optuna_module() -> Any:
    """``optuna``, or an ImportError that says how to install it."""
    try:
        import optuna
    except ImportError:
        raise ImportError("etm tune needs Optuna: pip install 'etm[tune]' (or pip install optuna)") from None
    return optuna


@contextmanager
def quiet_optuna_warnings() -> Iterator[None]:
    """Silence Optuna's warnings about what is done on purpose.

    Heartbeats and the retry callback are "experimental"; the companion
    pruning study's trials are asked for outside ``optimize`` (the main
    trial, inside ``optimize``, has the heartbeat).
    """
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        yield


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and the study record)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


class FlockLock:
    """The journal file's lock as an ``flock`` on ``study.journal.flock``: the kernel drops it when its holder dies.

    Optuna's own journal locks (a symlink or an exclusive file) outlive a
    process killed while writing, and the others wait 30 s before breaking
    them; an interrupted waiter may even delete a lock it does not hold. An
    ``flock`` has neither problem on a local disk (on NFS, use a database).
    """

    def __init__(self, journal: str) -> None:
        self.path = journal + ".flock"
        self._fh: Any = None

    def acquire(self) -> bool:
        import fcntl

        fh = open(self.path, "a")  # noqa: SIM115 - closed in release()
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        except BaseException:
            fh.close()
            raise
        self._fh = fh
        return True

    def release(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            fh.close()


@dataclass(frozen=True)
class StorageSpec:
    """How to open a study's storage in any process: a database URL, or the study directory's journal file."""

    study_dir: str
    url: str | None = None

    @property
    def embedded(self) -> bool:
        return self.url is None

    @property
    def journal_path(self) -> Path:
        return Path(self.study_dir) / JOURNAL_FILE

    def describe(self) -> str:
        return str(self.journal_path) if self.url is None else mask_url(self.url)


def open_storage(spec: StorageSpec) -> Any:
    """The Optuna storage of ``spec``; an unreachable database raises ValueError naming the (masked) URL."""
    optuna = optuna_module()
    if spec.url is None:
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        Path(spec.study_dir).mkdir(parents=True, exist_ok=True)
        journal = str(spec.journal_path)
        try:
            import fcntl  # noqa: F401
        except ImportError:  # Windows: Optuna's exclusive-file lock
            lock: Any = JournalFileOpenLock(journal)
        else:
            lock = FlockLock(journal)
        return optuna.storages.JournalStorage(JournalFileBackend(journal, lock_obj=lock))
    url = spec.url
    if "://" not in url:
        raise ValueError(f"storage {url!r} is not a database URL: write e.g. postgresql://user:password@host/db or "
                         "sqlite:///path/study.db (leave --storage out for the journal file in the study directory)")
    try:
        if url.startswith(("redis://", "rediss://")):
            from optuna.storages.journal import JournalRedisBackend

            storage = optuna.storages.JournalStorage(JournalRedisBackend(url))
            storage.get_all_studies()  # connects
            return storage
        connect_args = {"connect_timeout": 10} if url.startswith(("postgresql", "postgres", "mysql")) else {}
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        with quiet_optuna_warnings():
            return optuna.storages.RDBStorage(
                url, engine_kwargs={"pool_pre_ping": True, "connect_args": connect_args},
                heartbeat_interval=HEARTBEAT_INTERVAL, grace_period=GRACE_PERIOD,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY))
    except ImportError as err:
        raise ValueError(f"cannot open the storage {mask_url(url)}: {err}; install the database driver (for "
                         "PostgreSQL: pip install 'psycopg[binary]')") from None
    except Exception as err:  # SQLAlchemy / redis connection errors have no common base worth importing
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot reach the storage {mask_url(url)}: {reason}. Check that the server runs and that "
                         "the URL's host, port, database, user and password are right") from None


# -- the corpus a study belongs to -----------------------------------------------------------
def corpus_fingerprint(corpus: CorpusSource) -> dict[str, Any]:
    """A short hash of the vocabulary, the part sizes and the train/valid word counts, with the sizes themselves."""
    digest = hashlib.sha256("\n".join(corpus.vocabulary).encode("utf-8"))
    sizes = {part: int(corpus.n_docs(part)) for part in ("train", "valid", "test")}
    digest.update(repr(sorted(sizes.items())).encode())
    for part in ("train", "valid"):
        digest.update(np.ascontiguousarray(corpus.word_totals(part), dtype=np.float64).tobytes())
    return {"fingerprint": digest.hexdigest()[:16], "vocabulary_size": len(corpus.vocabulary),
            **{f"{part}_documents": n for part, n in sizes.items()}}


def describe_corpus(record: dict[str, Any]) -> str:
    return (f"{record.get('path') or 'an in-memory corpus'} (fingerprint {record.get('fingerprint')}, "
            f"V={record.get('vocabulary_size')}, {record.get('train_documents')} training and "
            f"{record.get('valid_documents')} validation documents)")


def check_same_corpus(study_name: str, where: str, saved: dict[str, Any] | None, current: dict[str, Any]) -> None:
    """Refuse a study created with another corpus, naming both."""
    if saved is None or saved.get("fingerprint") == current.get("fingerprint"):
        return
    raise ValueError(f"study {study_name!r} in {where} was created with the corpus {describe_corpus(saved)}, but "
                     f"this run gives {describe_corpus(current)}; a study compares trials on one corpus only: use "
                     "another study directory (or --study-name) for this corpus")


# -- trials whose process died -------------------------------------------------------------------
def process_tag(pid: int) -> str:
    """The start time of process ``pid`` (Linux ``/proc``), so a reused pid is not taken for the old process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def _alive(pid: int, tag: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not tag or process_tag(pid) in ("", tag)


def stale_local_trials(trials: Sequence[Any]) -> list[Any]:
    """Running trials started on this machine by a process that has ended (killed, crashed)."""
    host = socket.gethostname()
    return [t for t in trials if t.user_attrs.get("host") == host and "pid" in t.user_attrs
            and not _alive(int(t.user_attrs["pid"]), str(t.user_attrs.get("process", "")))]
