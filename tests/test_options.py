"""The option table (etm.options) and its three faces agree: TopicModel, TrainingConfig and `etm train`."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re

import pytest

from etm import ETM, TopicModel, TrainingConfig
from etm.cli import build_parser, main
from etm.options import (
    CONFIG_DEFAULTS,
    DECODER_DEFAULTS,
    DEFAULTS,
    NON_OPTIONS,
    OPTIONS,
    Option,
    check_option,
    estimator_kwargs,
    validate_options,
)

FLAGGED = [o for o in OPTIONS.values() if o.flags]
ESTIMATOR = [o for o in OPTIONS.values() if o.estimator]
FED = [o for o in OPTIONS.values() if o.config]
#: TrainingConfig fields whose default deliberately differs from the estimator's (see etm.options).
CONFIG_EXCEPTIONS = {"batch_size": 1000, "epochs": 20, "patience": None, "kl_weight": 1.0, "encoder_token_drop": 0.0}


def _train_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


def _cli_defaults() -> argparse.Namespace:
    return build_parser().parse_args(["train", "C", "-o", "M"])


def _same(a: object, b: object) -> bool:
    return a == b and type(a) is type(b)


# -- defaults ------------------------------------------------------------------------------
@pytest.mark.parametrize("option", ESTIMATOR, ids=lambda o: o.name)
def test_estimator_signature_default_is_the_table_default(option: Option) -> None:
    parameter = inspect.signature(TopicModel.__init__).parameters[option.name]
    assert _same(parameter.default, option.default)
    assert _same(TopicModel().get_params()[option.name], option.default)


@pytest.mark.parametrize("option", FED, ids=lambda o: o.name)
def test_training_config_default_is_the_table_default(option: Option) -> None:
    fields = {f.name: f for f in dataclasses.fields(TrainingConfig)}
    assert _same(fields[option.config].default, option.training_default)
    assert _same(getattr(TrainingConfig(), option.config), CONFIG_DEFAULTS[option.config])
    expected = CONFIG_EXCEPTIONS.get(option.config, option.default)
    assert _same(option.training_default, expected)


@pytest.mark.parametrize("option", FLAGGED, ids=lambda o: o.name)
def test_cli_default_is_the_table_default(option: Option) -> None:
    assert _same(getattr(_cli_defaults(), option.name), option.default)


def test_the_defaults_that_matter() -> None:
    """The defaults of main, spelled out: a change here is a change for every user."""
    assert DEFAULTS["batch_size"] is None and CONFIG_DEFAULTS["batch_size"] == 1000
    assert DEFAULTS["background"] is True and DEFAULTS["epochs"] is None and DEFAULTS["lr"] == 0.005
    assert CONFIG_DEFAULTS["epochs"] == 20 and DEFAULTS["patience"] == 10 and CONFIG_DEFAULTS["patience"] is None
    assert DEFAULTS["similarity"] == "cosine" and DEFAULTS["kl_weight"] is None
    assert CONFIG_DEFAULTS["kl_weight"] == 1.0
    assert DEFAULTS["decoder"] == "product" and DEFAULTS["temperature"] is None  # resolved by decoder at fit:
    assert DECODER_DEFAULTS == {"product": {"temperature": 0.5, "kl_weight": 0.05, "hidden_size": 200,
                                            "ecr_weight_per_token": 0.125},
                                "mixture": {"temperature": 0.1, "kl_weight": 0.1, "hidden_size": 800,
                                            "ecr_weight_per_token": 0.0}}
    assert DEFAULTS["hidden_size"] is None and DEFAULTS["ecr_weight"] is None
    assert DEFAULTS["ecr_word_mass"] == "sqrt-frequency"
    assert DEFAULTS["encoder_token_drop"] == 0.5 and CONFIG_DEFAULTS["encoder_token_drop"] == 0.0
    assert DEFAULTS["seed_doc_prior"] == 6.0 and DEFAULTS["dropout"] == 0.0 and DEFAULTS["n_topics"] == 50
    assert OPTIONS["encoder_token_drop"].high == 1.0 and OPTIONS["encoder_token_drop"].high_open


def test_etm_keeps_the_authors_class_dropout_the_one_documented_difference() -> None:
    assert inspect.signature(ETM.__init__).parameters["enc_drop"].default == 0.5
    assert DEFAULTS["dropout"] == 0.0
    assert "0.5" in ETM.__doc__ and "deliberate difference" in ETM.__doc__
    import etm.options

    assert "enc_drop" in etm.options.__doc__ and "0.5" in etm.options.__doc__


def test_seed_prior_defaults_are_the_tables() -> None:
    from etm.seeding import SeedPrior

    parameters = inspect.signature(SeedPrior.__init__).parameters
    assert parameters["doc_strength"].default == DEFAULTS["seed_doc_prior"] == 6.0
    assert parameters["strength"].default == DEFAULTS["seed_strength"]
    assert parameters["schedule"].default == DEFAULTS["seed_schedule"]


def test_docstring_defaults_agree_with_the_table() -> None:
    documented = dict(re.findall(r"^    (\w+) : .*, default (.+)$", TopicModel.__doc__, flags=re.M))
    checked = 0
    for name, text in documented.items():
        if name in OPTIONS:
            value = OPTIONS[name].default
            assert text == (f'"{value}"' if isinstance(value, str) else repr(value)), name
            checked += 1
    assert checked >= 15


# -- choices -------------------------------------------------------------------------------
def test_choices_are_the_real_constants() -> None:
    from etm.model import ACTIVATIONS
    from etm.seeding import SEED_SCHEDULES
    from etm.training import LR_SCHEDULES
    from etm.training.optimizers import OPTIMIZERS

    assert OPTIONS["activation"].choices == tuple(sorted(ACTIVATIONS))
    assert OPTIONS["optimizer"].choices is OPTIMIZERS
    assert OPTIONS["lr_schedule"].choices is LR_SCHEDULES
    assert OPTIONS["seed_schedule"].choices is SEED_SCHEDULES


@pytest.mark.parametrize("option", [o for o in FLAGGED if o.choices], ids=lambda o: o.name)
def test_cli_choices_are_the_table_choices(option: Option) -> None:
    action = next(a for a in _train_parser()._actions if a.dest == option.name)
    assert tuple(action.choices) == option.choices


# -- the table covers every parameter --------------------------------------------------------
def test_every_estimator_parameter_is_an_option_or_a_listed_non_option() -> None:
    parameters = set(inspect.signature(TopicModel.__init__).parameters) - {"self"}
    assert parameters == {o.name for o in ESTIMATOR} | set(NON_OPTIONS)
    assert not set(NON_OPTIONS) & set(OPTIONS)


def test_every_training_config_field_is_fed_by_the_table() -> None:
    assert {f.name for f in dataclasses.fields(TrainingConfig)} == {o.config for o in FED}


@pytest.mark.parametrize("option", FLAGGED, ids=lambda o: o.name)
def test_cli_help_states_the_generated_default(option: Option) -> None:
    action = next(a for a in _train_parser()._actions if a.dest == option.name)
    assert action.help.startswith(option.help[:20]) and "default" in action.help


# -- every flag spelling of before still works -------------------------------------------------
SPELLINGS = [
    (["--num-topics", "7"], "n_topics", 7), (["--num_topics", "7"], "n_topics", 7),
    (["--t-hidden-size", "16"], "hidden_size", 16), (["--t_hidden_size", "16"], "hidden_size", 16),
    (["--rho-size", "8"], "embedding_size", 8), (["--rho_size", "8"], "embedding_size", 8),
    (["--emb-size", "8"], "embedding_size", 8), (["--emb_size", "8"], "embedding_size", 8),
    (["--theta-act", "tanh"], "activation", "tanh"), (["--theta_act", "tanh"], "activation", "tanh"),
    (["--enc-drop", "0.2"], "dropout", 0.2), (["--enc_drop", "0.2"], "dropout", 0.2),
    (["--background", "0"], "background", False), (["--background", "1"], "background", True),
    (["--corpus-embeddings", "1"], "corpus_embeddings", True),
    (["--corpus-embedding-method", "ppmi"], "corpus_embedding_method", "ppmi"),
    (["--corpus_embeddings", "0"], "corpus_embeddings", False),
    (["--fine-tune-embeddings"], "fine_tune_embeddings", True),
    (["--fine_tune_embeddings"], "fine_tune_embeddings", True),
    (["--missing-embeddings", "fixed"], "missing_embeddings", "fixed"),
    (["--missing_embeddings", "fixed"], "missing_embeddings", "fixed"),
    (["--free-topics", "3"], "n_free_topics", 3), (["--free_topics", "3"], "n_free_topics", 3),
    (["--seed-strength", "0.5"], "seed_strength", 0.5), (["--seed_strength", "0.5"], "seed_strength", 0.5),
    (["--seed-schedule", "decay"], "seed_schedule", "decay"), (["--seed_schedule", "decay"], "seed_schedule", "decay"),
    (["--seed-doc-prior", "0"], "seed_doc_prior", 0.0), (["--seed_doc_prior", "0"], "seed_doc_prior", 0.0),
    (["--seed-doc-centered", "0"], "seed_doc_centered", False),
    (["--similarity", "cosine"], "similarity", "cosine"), (["--temperature", "0.2"], "temperature", 0.2),
    (["--decoder", "product"], "decoder", "product"),
    (["--ecr-weight", "250"], "ecr_weight", 250.0), (["--ecr_alpha", "10"], "ecr_alpha", 10.0),
    (["--ecr-word-mass", "sqrt-frequency"], "ecr_word_mass", "sqrt-frequency"),
    (["--epochs", "3"], "epochs", 3),
    (["--batch-size", "64"], "batch_size", 64), (["--batch_size", "64"], "batch_size", 64),
    (["--lr", "0.01"], "lr", 0.01), (["--optimizer", "sgd"], "optimizer", "sgd"),
    (["--wdecay", "1e-5"], "weight_decay", 1e-5), (["--clip", "1"], "clip", 1.0),
    (["--bow-norm", "0"], "bow_norm", False), (["--bow_norm", "1"], "bow_norm", True),
    (["--anneal-lr", "1"], "anneal_lr", True), (["--anneal_lr", "0"], "anneal_lr", False),
    (["--nonmono", "4"], "nonmono", 4), (["--patience", "3"], "patience", 3),
    (["--lr-factor", "2"], "lr_factor", 2.0), (["--lr_factor", "2"], "lr_factor", 2.0),
    (["--kl-warmup", "2"], "kl_warmup", 2), (["--kl_warmup", "2"], "kl_warmup", 2),
    (["--kl-weight", "0.1"], "kl_weight", 0.1), (["--kl_weight", "0.1"], "kl_weight", 0.1),
    (["--lr-schedule", "cosine"], "lr_schedule", "cosine"), (["--lr_schedule", "cosine"], "lr_schedule", "cosine"),
    (["--ema-decay", "0.9"], "ema_decay", 0.9), (["--ema_decay", "0.9"], "ema_decay", 0.9),
    (["--encoder-token-drop", "0.5"], "encoder_token_drop", 0.5),
    (["--encoder_token_drop", "0.5"], "encoder_token_drop", 0.5),
    (["--lazy-updates"], "lazy_updates", True), (["--lazy_updates"], "lazy_updates", True),
    (["--seed", "7"], "random_state", 7), (["--n-init", "3"], "n_init", 3), (["--n_init", "3"], "n_init", 3),
    (["--checkpoint-every", "2"], "checkpoint_every", 2), (["--checkpoint_every", "2"], "checkpoint_every", 2),
    # not in the table, on the command line only
    (["--embeddings", "v.txt"], "embeddings", "v.txt"), (["--emb-path", "v.txt"], "embeddings", "v.txt"),
    (["--emb_path", "v.txt"], "embeddings", "v.txt"), (["--embeddings_format", "glove"], "embeddings_format", "glove"),
    (["--seeds", "s.json"], "seeds", "s.json"), (["--device", "cpu"], "device", "cpu"),
    (["--threads", "2"], "threads", 2), (["--nproc", "2"], "nproc", 2),
    (["--checkpoint-dir", "D"], "checkpoint_dir", "D"), (["--checkpoint_dir", "D"], "checkpoint_dir", "D"),
    (["--resume"], "resume", True), (["--force"], "force", True), (["--split-seed", "3"], "split_seed", 3),
]


@pytest.mark.parametrize(("argv", "dest", "value"), SPELLINGS, ids=lambda x: x[0] if isinstance(x, list) else None)
def test_every_flag_spelling_of_before_still_parses(argv: list[str], dest: str, value: object) -> None:
    assert _same(getattr(build_parser().parse_args(["train", "C", "-o", "M", *argv]), dest), value)


def test_every_flagged_option_is_spelled_in_the_list_above() -> None:
    assert {dest for _, dest, _ in SPELLINGS} >= {o.name for o in FLAGGED}


# -- out of bounds is rejected everywhere alike ---------------------------------------------------
def _invalid_values(option: Option) -> list[object]:
    if option.choices:
        return ["nope"]
    if option.kind == "bool":
        return [2]
    step = 1 if option.kind == "int" else 0.5
    bad: list[object] = []
    if option.low is not None:
        bad.append(option.low if option.low_open else option.low - step)
    if option.high is not None:
        bad.append(option.high if option.high_open else option.high + 0.05)
    return bad


CASES = [(o, v) for o in OPTIONS.values() for v in _invalid_values(o)]
_ids = [f"{o.name}={v!r}" for o, v in CASES]


def test_every_option_has_a_rejected_value() -> None:
    assert {o.name for o, _ in CASES} == set(OPTIONS)


@pytest.mark.parametrize(("option", "value"), [c for c in CASES if c[0].estimator],
                         ids=[i for i, c in zip(_ids, CASES) if c[0].estimator])
def test_estimator_fit_rejects(option: Option, value: object) -> None:
    error = TypeError if option.kind == "bool" else ValueError
    with pytest.raises(error, match=re.escape(option.name)):
        TopicModel(**{option.name: value}).fit(["a b", "c d"])


@pytest.mark.parametrize(("option", "value"), [c for c in CASES if c[0].config],
                         ids=[i for i, c in zip(_ids, CASES) if c[0].config])
def test_training_config_rejects(option: Option, value: object) -> None:
    error = TypeError if option.kind == "bool" else ValueError
    with pytest.raises(error, match=re.escape(option.config)):
        TrainingConfig(**{option.config: value}).validate()


@pytest.mark.parametrize(("option", "value"), [c for c in CASES if c[0].flags and c[0].cli != "switch"],
                         ids=[i for i, c in zip(_ids, CASES) if c[0].flags and c[0].cli != "switch"])
def test_cli_rejects(option: Option, value: object, capsys) -> None:
    assert main(["train", "C", "-o", "M", f"{option.flags[0]}={value}"]) == 2
    err = capsys.readouterr().err
    assert "etm train: error: argument " + option.flags[0] in err
    assert option.cli == "01" or option.name in err  # the estimator's message, named as it names it


def test_one_message_style() -> None:
    with pytest.raises(ValueError, match=r"^n_topics must be >= 1, got 0$"):
        check_option("n_topics", 0)
    with pytest.raises(ValueError, match=r"^encoder_token_drop must be in \[0, 1\), got 1\.0$"):
        check_option("encoder_token_drop", 1.0)
    with pytest.raises(ValueError, match=r"^lr must be > 0, got 0$"):
        check_option("lr", 0)
    with pytest.raises(ValueError, match=r"^lr must be a finite number, got inf$"):
        check_option("lr", float("inf"))
    with pytest.raises(ValueError, match=r"^optimizer='lbfgs' is not one of \['adam'"):
        check_option("optimizer", "lbfgs")
    with pytest.raises(TypeError, match=r"^patience must be an integer or None, got 2\.5$"):
        check_option("patience", 2.5)
    with pytest.raises(TypeError, match=r"^seed must be an integer, got None$"):  # TrainingConfig needs a seed
        check_option("random_state", None, "config")
    validate_options(DEFAULTS)  # the defaults pass


# -- the faces pass options through unchanged ----------------------------------------------------
def test_the_cli_hands_every_option_to_the_estimator() -> None:
    argv: list[str] = []
    values = {"n_topics": 7, "hidden_size": 16, "embedding_size": 8, "activation": "tanh", "dropout": 0.2,
              "background": False, "similarity": "cosine", "temperature": 0.2, "decoder": "product",
              "ecr_weight": 250.0, "ecr_alpha": 10.0, "ecr_word_mass": "sqrt-frequency",
              "fine_tune_embeddings": True, "corpus_embeddings": True, "corpus_embedding_method": "ppmi",
              "missing_embeddings": "fixed", "n_free_topics": 2,
              "seed_strength": 0.5, "seed_schedule": "decay", "seed_doc_prior": 1.5, "seed_doc_centered": False,
              "epochs": 3, "batch_size": 64,
              "lr": 0.01, "optimizer": "adam", "weight_decay": 1e-5, "clip": 1.0, "bow_norm": False,
              "anneal_lr": True, "nonmono": 4, "lr_factor": 2.0, "patience": 3, "kl_warmup": 2, "kl_weight": 0.1,
              "lr_schedule": "constant", "ema_decay": 0.9, "encoder_token_drop": 0.5, "lazy_updates": True,
              "random_state": 7, "n_init": 3, "checkpoint_every": 2}
    assert set(values) == {o.name for o in FLAGGED}
    for name, value in values.items():
        option = OPTIONS[name]
        if option.cli == "switch":
            argv += [option.flags[0]] if value else []
        else:
            argv += [option.flags[0], str(int(value)) if option.kind == "bool" else str(value)]
    kwargs = estimator_kwargs(build_parser().parse_args(["train", "C", "-o", "M", *argv]))
    assert kwargs == values
    assert TopicModel(**kwargs).get_params()["lazy_updates"] is True


def test_the_estimator_hands_every_training_option_to_training_config() -> None:
    values = {"epochs": 3, "lr": 0.01, "optimizer": "sgd", "weight_decay": 1e-5, "clip": 1.0, "bow_norm": False,
              "anneal_lr": True, "nonmono": 4, "lr_factor": 2.0, "patience": 3, "kl_warmup": 2, "kl_weight": 0.1,
              "lr_schedule": "constant", "ema_decay": 0.9, "encoder_token_drop": 0.5, "lazy_updates": False,
              "checkpoint_every": 2}
    model = TopicModel(**values, batch_size=None, random_state=None)
    model.batch_size_, model.init_seed_, model.epochs_, model.kl_weight_ = 64, 11, 3, 0.1  # what fit resolves
    config = model._training_config()
    for name, value in values.items():
        assert getattr(config, OPTIONS[name].config) == value, name
    assert (config.batch_size, config.seed, config.eval_batch_size, config.eval_every) == (64, 11, 1000, 1)
    assert {o.config for o in FED if o.estimator} <= set(values) | {"batch_size", "seed"}
