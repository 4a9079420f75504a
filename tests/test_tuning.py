"""``etm tune`` / :mod:`etm.tuning`: real studies on a slice of the authors' 20 Newsgroups.

Trials are tiny (H=32, E=16, 3 epochs) so a study takes seconds; what is
checked is the bookkeeping: every trial finished exactly once, across worker
processes, Ctrl-C, SIGKILL and resumes, on the embedded journal and on a real
PostgreSQL server.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from etm.cli import main
from etm.corpus import PreparedCorpus
from etm.estimator import TopicModel
from etm.options import DECODER_DEFAULTS, DEFAULTS
from etm.tuning import Choice, Range, default_space, parse_spec, tune, validation_quality
from etm.tuning.space import default_trial, edge_settings

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
import postgres  # noqa: E402

TINY = ["--param", "hidden_size=32", "--param", "embedding_size=16", "--param", "batch_size=100", "--device", "cpu",
        "--threads", "1"]
TINY_SPACE = {"hidden_size": 32, "embedding_size": 16, "batch_size": 100, "epochs": 3, "n_topics": Range(3, 8)}
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@pytest.fixture(scope="module")
def corpus_dir(authors_corpus, tmp_path_factory) -> Path:
    """600 training documents and the authors' 100 validation documents, saved as an etm corpus directory."""
    pc = authors_corpus
    small = PreparedCorpus(train=pc.train.subset(range(600)), valid=pc.valid, valid_halves=pc.valid_halves)
    return small.save(tmp_path_factory.mktemp("tune") / "corpus")


@pytest.fixture(scope="module")
def other_corpus_dir(authors_corpus, tmp_path_factory) -> Path:
    pc = authors_corpus
    other = PreparedCorpus(train=pc.train.subset(range(600, 1200)), valid=pc.valid, valid_halves=pc.valid_halves)
    return other.save(tmp_path_factory.mktemp("tune-other") / "corpus")


def _journal(study_dir: Path, name: str = "etm-tune") -> optuna.Study:
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(study_dir / "study.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def _finished(study: optuna.Study) -> dict[int, tuple]:
    return {t.number: (t.state, t.values, t.params) for t in study.get_trials(states=FINISHED)}


# -- the hook ------------------------------------------------------------------------------------
def test_fit_calls_on_epoch_end_which_may_add_to_the_history_and_stop_training(authors_corpus):
    pc = authors_corpus
    small = PreparedCorpus(train=pc.train.subset(range(300)), valid=pc.valid, valid_halves=pc.valid_halves)
    seen = []

    def hook(epoch, model, record):
        seen.append(epoch)
        record["marker"] = epoch * 10
        assert "valid_perplexity" in record and model.num_topics == 3

    est = TopicModel(3, hidden_size=16, embedding_size=8, epochs=3, batch_size=100, device="cpu")
    est.fit(small, on_epoch_end=hook)
    assert seen == [1, 2, 3] and [h["marker"] for h in est.history_] == [10, 20, 30]

    class Enough(Exception):
        pass

    def stop(epoch, model, record):
        if epoch == 2:
            raise Enough

    with pytest.raises(Enough):
        TopicModel(3, hidden_size=16, embedding_size=8, epochs=5, batch_size=100, device="cpu").fit(
            small, on_epoch_end=stop)


# -- the search space ------------------------------------------------------------------------------
def test_specs_parse_to_ranges_choices_and_fixed_values():
    assert parse_spec("n_topics", "10:100") == Range(10, 100)
    assert parse_spec("n_topics", "10:100:10") == Range(10, 100, step=10)
    assert parse_spec("kl_weight", "0.1:1:log") == Range(0.1, 1.0, log=True)
    assert parse_spec("background", "1,0") == Choice((True, False))
    assert parse_spec("activation", "relu,tanh") == Choice(("relu", "tanh"))
    assert parse_spec("encoder_token_drop", "0.3") == 0.3


@pytest.mark.parametrize("name, text, message", [
    ("n_topics", "100:10", r"n_topics=100:10 is inverted: give LOW < HIGH"),
    ("n_topics", "10:10", r"n_topics=10:10 is empty"),
    ("n_topics", "10:", r"is not a range: write LOW:HIGH"),
    ("n_topics", "0:10", r"n_topics must be >= 1, got 0"),
    ("n_topics", "10:95:10", r"multiple of it"),
    ("encoder_token_drop", "0:1", r"encoder_token_drop must be in \[0, 1\), got 1.0"),
    ("lr", "0:0.1:log", r"lr must be > 0, got 0.0"),
    ("background", "0:1", r"background is bool, not a number"),
    ("kl_weight", "abc", r"'abc' is not a number"),
    ("no_such_option", "1:2", r"'no_such_option' is not an option a search can set; choose from \["),
    ("n_init", "3", r"'n_init' is not an option a search can set"),
])
def test_bad_specs_are_refused_naming_the_option(name, text, message):
    with pytest.raises(ValueError, match=message):
        parse_spec(name, text)


def test_the_default_space_is_centred_on_the_options_defaults():
    space = default_space()
    assert space["n_topics"] == Range(10, 100, log=True)
    kl = DECODER_DEFAULTS["product"]["kl_weight"]  # the unseeded default recipe's
    assert space["kl_weight"] == Range(kl / 5, max(kl, min(1.0, 5 * kl)), log=True)
    assert space["lr"] == Range(DEFAULTS["lr"] / 4, DEFAULTS["lr"] * 4, log=True)
    assert space["temperature"] == Range(0.25, 1.0, log=True)
    first = default_trial(space)
    product = {k: v for k, v in DECODER_DEFAULTS["product"].items() if k in space}
    expected = {name: DEFAULTS[name] for name in space} | product
    assert first == expected and "hidden_size" not in space  # the study's first trial: the defaults


# -- a study end to end ------------------------------------------------------------------------
def test_a_small_study_end_to_end(corpus_dir, tmp_path, capsys, caplog, authors_corpus):
    caplog.set_level(logging.INFO)
    study_dir = tmp_path / "study"
    argv = ["tune", str(corpus_dir), "-o", str(study_dir), "--trials", "4", "--num-topics", "3:8", "--epochs", "3",
            *TINY, "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["trials"]["complete"] + summary["trials"]["pruned"] == 4 and summary["trials"]["failed"] == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "etm.tuning.objective"]
    assert len(lines) == 4 and all(" finished: " in m or " pruned at epoch " in m for m in lines)

    rows = json.loads((study_dir / "trials.json").read_text())
    assert [r["trial"] for r in rows] == [0, 1, 2, 3]
    assert (study_dir / "trials.csv").read_text().splitlines()[0].startswith("trial,state,n_topics,kl_weight")
    first = rows[0]  # the defaults, K clipped into the range
    assert first["n_topics"] == 8 and first["kl_weight"] == DECODER_DEFAULTS["product"]["kl_weight"]
    assert first["lr"] == DEFAULTS["lr"]
    for name in ("pareto.png", "quality_by_k.png"):
        assert (study_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert summary["chosen"]
    for chosen in summary["chosen"]:  # K of 3:8 at either end is reported as an edge of the space
        k = chosen["settings"]["n_topics"]
        assert chosen["at_edge"].get("n_topics") == {3: "low", 8: "high"}.get(k)
    valid = authors_corpus.valid.counts
    corpus = PreparedCorpus.load(corpus_dir)
    for chosen in summary["chosen"]:
        model = TopicModel.load(chosen["model"], device="cpu")
        # the trial's numbers are the model's validation numbers: coherence over the validation documents,
        # perplexity on the validation halves (never the test split)
        assert validation_quality(model.topic_word_, valid)["quality"] == pytest.approx(chosen["quality"])
        assert model.perplexity(corpus, part="valid") == pytest.approx(chosen["perplexity"], rel=1e-4)
        assert main(["topics", chosen["model"], "-n", "5"]) == 0
    saved = {p.name for p in (study_dir / "models").iterdir()}
    assert saved == {f"trial-{c['trial']:04d}" for c in summary["chosen"]}  # dominated models are removed

    study = _journal(study_dir)
    assert study.user_attrs["corpus"]["vocabulary_size"] == 3072 and study.user_attrs["objective"] == "both"
    before = _finished(study)
    assert main(argv) == 1 and "already holds the study 'etm-tune' with 4 trials; continue it with --resume" in (
        capsys.readouterr().err)
    assert main([*argv[:5], "5", *argv[6:], "--resume"]) == 0  # one more trial, the first four unchanged
    after = _finished(_journal(study_dir))
    assert len(after) == 5 and {n: after[n] for n in before} == before


def test_two_worker_processes_share_the_embedded_study(corpus_dir, tmp_path):
    result = tune(corpus_dir, tmp_path / "study", n_trials=6, n_jobs=2, space=TINY_SPACE, device="cpu", threads=1)
    trials = result.study.get_trials()
    assert [t.number for t in trials] == list(range(6))  # no trial lost, none run twice
    assert all(t.state in FINISHED for t in trials)
    assert result.counts == {"complete": result.counts["complete"], "pruned": 6 - result.counts["complete"],
                             "failed": 0, "running": 0, "waiting": 0}
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 6
    pids = {t.user_attrs["pid"] for t in trials}
    assert os.getpid() not in pids and len(pids) == 2  # both workers ran trials, in their own processes
    side = optuna.load_study(study_name="etm-tune.pruning", storage=result.study._storage)
    assert all(t.state.is_finished() for t in side.get_trials())  # the pruning study's trials are closed too
    # it prunes on validation quality (perplexity falls with K and would stop every small-K trial first)
    assert side.direction == optuna.study.StudyDirection.MAXIMIZE
    by_number = {t.number: t for t in side.get_trials()}
    for t in trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert by_number[t.user_attrs["pruning_trial"]].value == pytest.approx(t.user_attrs["quality"])


# -- interruptions ---------------------------------------------------------------------------------
def _start(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    # SIGINT back to its default: a shell starts background jobs with it ignored, and Python keeps it ignored
    return subprocess.Popen([sys.executable, "-m", "etm", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_running(study_dir: Path, proc: subprocess.Popen, finished: int) -> optuna.Study:
    """Wait until ``finished`` trials are finished and another has reported its first epoch (several remain)."""
    deadline = time.time() + 300
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            study = _journal(study_dir)
        except (KeyError, FileNotFoundError):  # not created yet
            time.sleep(0.2)
            continue
        trials = study.get_trials()
        if sum(t.state in FINISHED for t in trials) >= finished and any(
                t.state == TrialState.RUNNING and t.intermediate_values for t in trials):
            return study
        time.sleep(0.2)
    raise AssertionError("the study did not reach a running trial in time")


def test_ctrl_c_and_kill_lose_no_finished_trial(corpus_dir, tmp_path):
    study_dir = tmp_path / "study"
    argv = ["tune", str(corpus_dir), "-o", str(study_dir), "--trials", "4", "--num-topics", "3:8", "--epochs", "12",
            "--objective", "perplexity", "--pruner", "none", *TINY]
    proc = _start(argv)  # 1. Ctrl-C in the middle of the second trial
    _wait_for_running(study_dir, proc, 1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "continue with the same command plus --resume" in err
    study = _journal(study_dir)
    states = [(t.number, t.state.name) for t in study.get_trials()]
    interrupted = study.get_trials(states=(TrialState.FAIL,))
    assert len(interrupted) == 1, states
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.params for t in waiting] == [interrupted[0].params], states  # queued again with its settings
    kept = _finished(study)

    proc = _start([*argv, "--resume"])  # 2. SIGKILL in the middle of a trial: nothing runs on the way out
    _wait_for_running(study_dir, proc, len(kept) + 1)
    proc.kill()
    proc.communicate(timeout=60)
    study = _journal(study_dir)
    killed = study.get_trials(states=(TrialState.RUNNING,))
    assert len(killed) == 1, [(t.number, t.state.name) for t in study.get_trials()]
    kept_2 = _finished(study)
    assert {n: kept_2[n] for n in kept} == kept

    assert main([*argv, "--resume"]) == 0  # 3. resume to the end
    study = _journal(study_dir)
    final = _finished(study)
    assert len(final) == 4 and {n: final[n] for n in kept_2} == kept_2
    dead = study.get_trials()[killed[0].number]
    assert dead.state == TrialState.FAIL  # found dead, failed, and run again with its settings:
    retries = {t.system_attrs.get("failed_trial"): t for t in study.get_trials(states=FINISHED)}
    assert retries[dead.number].params == dead.params and len(dead.params) == 5
    assert retries[interrupted[0].number].params == interrupted[0].params
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))


# -- PostgreSQL ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_url():
    """``ETM_TEST_POSTGRES_URL`` (``.ci/run`` starts a server), else a server started here from the binaries."""
    url = os.environ.get("ETM_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    root = tempfile.mkdtemp(prefix="etm-test-postgres-")
    try:
        yield postgres.start(root)
    finally:
        postgres.stop(root)


def test_a_study_in_postgresql_is_shared_by_two_study_directories(corpus_dir, tmp_path, postgres_url):
    name = f"etm-test-{uuid.uuid4().hex[:8]}"
    first = tune(corpus_dir, tmp_path / "machine-a", n_trials=3, space=TINY_SPACE, storage=postgres_url,
                 study_name=name, device="cpu", threads=1)
    assert first.counts["complete"] + first.counts["pruned"] == 3
    # a second machine joins the same study (its own study directory): it runs only the missing trial
    second = tune(corpus_dir, tmp_path / "machine-b", n_trials=4, space=TINY_SPACE, storage=postgres_url,
                  study_name=name, resume=True, device="cpu", threads=1)
    study = optuna.load_study(study_name=name, storage=postgres_url)
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3] and all(t.state in FINISHED for t in trials)
    assert study.user_attrs["corpus"]["fingerprint"] == second.study.user_attrs["corpus"]["fingerprint"]
    # each trial's model was saved by the run that trained it, in its own study directory
    assert [Path(t.user_attrs["model"]).parent.parent.name for t in trials if "model" in t.user_attrs] == [
        "machine-b" if t.number == 3 else "machine-a" for t in trials if "model" in t.user_attrs]
    assert {r["trial"] for r in second.rows} == {0, 1, 2, 3}


# -- bad input ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra, message", [
    (["--num-topics", "100:10"], "n_topics=100:10 is inverted"),
    (["--num-topics", "20:20"], "n_topics=20:20 is empty"),
    (["--num-topics", ":"], "is not a range"),
    (["--param", "lr=0.01:0.001:log"], "lr=0.01:0.001:log is inverted"),
    (["--param", "lr"], "expected NAME=RANGE"),
    (["--trials", "0"], "must be above 0"),
])
def test_usage_errors_exit_2(corpus_dir, tmp_path, capsys, extra, message):
    assert main(["tune", str(corpus_dir), "-o", str(tmp_path / "s"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def _tune_error(capsys, *argv: str) -> str:
    assert main(["tune", *argv]) == 1
    return capsys.readouterr().err


def test_k_above_the_vocabulary_is_refused(corpus_dir, tmp_path, capsys):
    err = _tune_error(capsys, str(corpus_dir), "-o", str(tmp_path / "s"), "--num-topics", "10:5000")
    assert "n_topics=10:5000 reaches K=5000, more than the 3072 words of the corpus's vocabulary" in err


def test_a_study_of_another_corpus_is_refused_naming_both(corpus_dir, other_corpus_dir, tmp_path, capsys):
    study_dir = tmp_path / "s"
    assert main(["tune", str(corpus_dir), "-o", str(study_dir), "--trials", "1", "--num-topics", "3:5",
                 "--epochs", "1", *TINY, "--quiet"]) == 0
    capsys.readouterr()
    err = _tune_error(capsys, str(other_corpus_dir), "-o", str(study_dir), "--trials", "2", "--resume")
    assert f"was created with the corpus {corpus_dir.resolve()} (fingerprint" in err
    assert f"but this run gives {other_corpus_dir.resolve()} (fingerprint" in err


def test_an_unreachable_storage_is_named_with_its_password_masked(corpus_dir, tmp_path, capsys):
    err = _tune_error(capsys, str(corpus_dir), "-o", str(tmp_path / "s"), "--storage",
                      "postgresql://etm:secret@127.0.0.1:1/nowhere")
    assert "cannot reach the storage postgresql://etm:***@127.0.0.1:1/nowhere" in err and "secret" not in err
    err = _tune_error(capsys, str(corpus_dir), "-o", str(tmp_path / "s"), "--storage", "study.db")
    assert "is not a database URL" in err


def test_a_corpus_without_validation_documents_is_refused(authors_corpus, tmp_path):
    no_valid = PreparedCorpus(train=authors_corpus.train.subset(range(100)))
    with pytest.raises(ValueError, match="the corpus has no validation documents; .* --valid-size"):
        tune(no_valid, tmp_path / "s", n_trials=1, space=TINY_SPACE)
    assert not (tmp_path / "s").exists()


def test_valid_size_carves_validation_documents_from_training(authors_corpus):
    from etm.tuning import carve_validation

    pc = authors_corpus
    small = PreparedCorpus(train=pc.train.subset(range(500)), valid=pc.valid, valid_halves=pc.valid_halves)
    carved = carve_validation(small, 0.2, seed=1)
    assert carved.n_docs("train") == 400 and carved.n_docs("valid") == 100 + 100
    assert np.allclose(carved.word_totals("train") + carved.word_totals("valid"),
                       small.word_totals("train") + small.word_totals("valid"))
    again = carve_validation(small, 0.2, seed=1)
    assert (again.train.counts != carved.train.counts).nnz == 0  # the same documents every time
    with_test = PreparedCorpus(train=small.train, valid=pc.valid, valid_halves=pc.valid_halves, test=pc.test,
                               test_halves=pc.test_halves)
    kept = carve_validation(with_test, 0.2, seed=1)  # the test split, halves included, is left as it was
    assert kept.test is pc.test
    assert all((a != b).nnz == 0 for a, b in zip(kept.test_halves, pc.test_halves))


def test_validation_quality_scores_coherence_with_the_pseudo_count_estimate(authors_corpus):
    """The tuner's coherence is the pseudo-count NPMI over the validation documents, not the authors' -1 rule,
    which over 20NG's 100 validation documents scores most pairs of rarer words -1."""
    from etm.metrics import top_word_indices, topic_coherence
    from etm.tuning.objective import VALIDATION_PSEUDO_COUNT

    valid = authors_corpus.valid.counts
    totals = authors_corpus.word_totals("train")
    order = np.argsort(-totals)
    rng = np.random.default_rng(0)
    topic_word = rng.random((6, valid.shape[1]))
    topic_word[:3, order[:30].reshape(3, 10)] += 10  # three topics of the most frequent words
    topic_word[3:, order[1000:1030].reshape(3, 10)] += 10  # three of words ranked 1,000-1,030
    scores = validation_quality(topic_word, valid)
    top = top_word_indices(topic_word, 10)
    assert VALIDATION_PSEUDO_COUNT > 0
    assert scores["coherence"] == pytest.approx(topic_coherence(top, valid, pseudo_count=VALIDATION_PSEUDO_COUNT))
    assert scores["quality"] == pytest.approx(scores["coherence"] * scores["diversity"])
    # rare words seldom meet in 100 documents: the authors' rule scores those pairs -1, the estimate near 0
    assert topic_coherence(top[3:], valid) < -0.5
    assert abs(topic_coherence(top[3:], valid, pseudo_count=VALIDATION_PSEUDO_COUNT)) < 0.2


def test_settings_at_the_edge_of_their_range_are_named_unless_the_option_cannot_pass_it():
    space = {"n_topics": Range(10, 100, log=True), "kl_weight": Range(0.01, 0.25, log=True),
             "encoder_token_drop": Range(0.0, 0.7), "lr": Range(0.001, 0.02, log=True), "hidden_size": 200,
             "background": Choice((True, False))}
    # the tuning benchmark's best trial: K at the lowest, the KL weight near the highest (within 5% of the log span)
    best = {"n_topics": 10, "kl_weight": 0.245, "encoder_token_drop": 0.35, "lr": 0.015, "background": True}
    assert edge_settings(best, space) == {"n_topics": "low", "kl_weight": "high"}
    assert edge_settings({"n_topics": 13, "kl_weight": 0.2, "lr": 0.0011}, space) == {"lr": "low"}
    # no token drop is the option's own limit, not an edge; 0.7 is not the option's limit (it allows up to 1)
    assert edge_settings({"encoder_token_drop": 0.0}, space) == {}
    assert edge_settings({"encoder_token_drop": 0.69}, space) == {"encoder_token_drop": "high"}
    assert edge_settings({"hidden_size": 200, "background": False}, space) == {}  # fixed values and choices
