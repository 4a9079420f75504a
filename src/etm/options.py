"""Every training, model and seeding option, declared once.

:data:`OPTIONS` is the single table of the options of ``etm train``,
:class:`etm.TopicModel` and :class:`etm.training.TrainingConfig`: each row
gives the estimator's parameter name, its kind, default, bounds or choices,
a one-sentence help, its command-line flags and the ``TrainingConfig`` field
it feeds. From it come

* ``TopicModel.__init__``'s defaults (:data:`DEFAULTS`) and its parameter
  checks in ``fit`` (:func:`check_option`);
* ``TrainingConfig``'s field defaults (:data:`CONFIG_DEFAULTS`) and
  ``TrainingConfig.validate`` (:func:`validate_config`);
* the ``etm train`` arguments (:func:`add_training_options`), their help (the
  "(default X)" part is generated from the default) and the estimator's
  keyword arguments (:func:`estimator_kwargs`).

A new option is one row here, plus one line in each of the two signatures
that stay explicit (``TopicModel.__init__``, which scikit-learn reads, and a
``TrainingConfig`` field for a setting of the training loop), both taking
their default from this table; ``tests/test_options.py`` checks that the
estimator, ``TrainingConfig`` and the command line agree with it.

Where a default differs, it does on purpose:

* :class:`etm.ETM`'s own ``enc_drop`` default is 0.5, the default of the
  authors' ``ETM`` class, kept so that code written against their module
  behaves the same: the one deliberate difference between the module and
  this table, whose ``dropout`` 0.0 (``--enc-drop``) is the default of the
  authors' ``main.py``.
* ``TrainingConfig.batch_size`` defaults to the authors' 1000 because the
  training loop needs a number; the estimator's ``batch_size=None`` (``etm
  train`` without ``--batch-size``) is chosen for the corpus by
  :func:`etm.diagnostics.auto_batch_size` and handed to the loop resolved
  (``config_default`` in the table). Likewise ``epochs``: the loop's 20 (the
  authors'), the estimator's None is :func:`etm.diagnostics.auto_epochs`.
* ``TrainingConfig.patience`` is None (the authors' loop runs every epoch);
  the estimator and ``etm train`` stop after 10 epochs without a better
  validation perplexity.
* The topic-quality recipe (issue 16) is the estimator's and ``etm train``'s
  default, while ``TrainingConfig`` and :class:`etm.ETM` keep the authors'
  objective: ``decoder="product"`` (the module's default is the paper's
  "mixture"), ``similarity="cosine"`` with ``temperature=0.5`` (the module's
  "dot"; its temperature default stays 0.1), ``kl_weight=0.05`` (the loop's
  1.0) and ``encoder_token_drop=0.5`` (0.0). ``temperature``,
  ``kl_weight`` and ``hidden_size`` are None in the table, chosen at
  ``fit`` by the decoder (0.5, 0.05 and 200 with the product; 0.1, 0.1
  and 800 with the mixture, whose recipe was chosen at the authors' width).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from etm.model import ACTIVATIONS, DECODERS, SIMILARITIES

__all__ = [
    "Option",
    "OPTIONS",
    "DEFAULTS",
    "CONFIG_DEFAULTS",
    "DECODER_DEFAULTS",
    "SHORT_DOCUMENT_TOKENS",
    "PPMI_DOCUMENT_TOKENS",
    "NON_OPTIONS",
    "LR_SCHEDULES",
    "SEED_SCHEDULES",
    "MISSING_EMBEDDINGS",
    "CORPUS_EMBEDDING_METHODS",
    "check_option",
    "check_value",
    "validate_options",
    "validate_config",
    "add_training_options",
    "training_groups",
    "estimator_kwargs",
]

#: What the estimator's None defaults of ``temperature``, ``kl_weight``, ``hidden_size`` and ``ecr_weight`` (this
#: one per token of the mean training document) become, by decoder (``TopicModel.fit``).
DECODER_DEFAULTS: dict[str, dict[str, float]] = {
    "product": {"temperature": 0.5, "kl_weight": 0.05, "hidden_size": 200, "ecr_weight_per_token": 0.125},
    "mixture": {"temperature": 0.1, "kl_weight": 0.1, "hidden_size": 800, "ecr_weight_per_token": 0.0},
}
#: Below this mean training-document length in tokens, ``corpus_embeddings=None`` learns word vectors of the
#: corpus (``corpus_embedding_method``) and keeps them fixed (``TopicModel.fit``; docs/benchmarks/recipe.md,
#: "Ninth session").
SHORT_DOCUMENT_TOKENS = 50
#: Below this mean training-document length in tokens, corpus vectors are PPMI vectors, from it skip-gram
#: (``corpus_embedding_method=None``; docs/benchmarks/recipe.md, "Twelfth session").
PPMI_DOCUMENT_TOKENS = 30
#: How ``corpus_embeddings`` makes the corpus's own word vectors (``corpus_embedding_method``;
#: etm.embeddings.corpus_vectors).
CORPUS_EMBEDDING_METHODS = ("ppmi", "skipgram")
#: Learning-rate schedules of training (``lr_schedule``).
LR_SCHEDULES = ("constant", "cosine")
#: How the seed prior's strength changes over training (``seed_schedule``).
SEED_SCHEDULES = ("constant", "decay")
#: What happens to words without a pretrained vector (``missing_embeddings``).
MISSING_EMBEDDINGS = ("train", "fixed")
#: How the embedding-clustering regulariser spreads the words' mass (``ecr_word_mass``; etm.regularizers.word_mass).
ECR_WORD_MASSES = ("sqrt-frequency", "uniform")
#: Optimizers of training (``optimizer``), the authors' choices; ``etm.training.optimizers.make_optimizer`` builds them.
OPTIMIZERS = ("adam", "adagrad", "adadelta", "rmsprop", "asgd", "sgd")

#: ``TopicModel`` parameters that are not options of this table: objects, or settings of where and how it runs.
NON_OPTIONS = ("embeddings", "seed_topics", "preprocessor", "device", "checkpoint_dir", "verbose")

#: The argument groups of ``etm train``, in order: key -> title.
GROUPS = {
    "model": "model",
    "embeddings": "pretrained word embeddings (the labelled ETM)",
    "seeding": "seeded topics",
    "optimisation": "optimisation (the authors' defaults)",
    "checkpoints": "checkpoints",
}

_SAME = object()  # config_default: the same as default
_KINDS = {"int": "an integer", "float": "a number", "bool": "True or False", "str": "a string", "path": "a path"}


@dataclass(frozen=True)
class Option:
    """One option: the estimator's parameter ``name`` and how every face spells, defaults and checks it.

    ``low``/``high`` bound numbers (closed unless ``low_open``/``high_open``);
    ``flags`` are the ``etm train`` spellings (each dashed flag also gets the
    authors' underscore spelling; none = not on the command line); ``cli`` is
    "value", "switch" (a store_true flag) or "01" (a bool given as 0 or 1);
    ``config`` is the ``TrainingConfig`` field it feeds, whose default is
    ``config_default`` when that differs; ``unset`` says what None means.
    """

    name: str
    kind: str
    default: Any
    help: str
    group: str = "optimisation"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] | None = None
    nullable: bool = False
    unset: str | None = None
    flags: tuple[str, ...] = ()
    cli: str = "value"
    config: str | None = None
    config_default: Any = _SAME
    estimator: bool = True

    @property
    def training_default(self) -> Any:
        """The default of the ``TrainingConfig`` field this option feeds."""
        return self.default if self.config_default is _SAME else self.config_default

    def check(self, value: Any, label: str | None = None, *, nullable: bool | None = None) -> None:
        check_value(label or self.name, value, self.kind, nullable=self.nullable if nullable is None else nullable,
                    low=self.low, high=self.high, low_open=self.low_open, high_open=self.high_open,
                    choices=self.choices)

    def help_text(self) -> str:
        """The ``--help`` line: the sentence plus the default, generated from the table."""
        if self.default is None:
            default = f"default: {self.unset}"
        elif self.cli == "switch":
            default = "default: off" if not self.default else "default: on"
        elif self.kind == "bool":
            default = f"default {int(self.default)}"
        else:
            default = f"default {self.default}"
        text = f"{self.help[:-1]}; {default})" if self.help.endswith(")") else f"{self.help} ({default})"
        return text.replace("%", "%%")


_o = Option  # short, for the table's rows


OPTIONS: dict[str, Option] = {o.name: o for o in [
    # model ------------------------------------------------------------------------
    _o("n_topics", "int", 50, "K, the number of topics", group="model", low=1, flags=("--num-topics",)),
    _o("hidden_size", "int", None, "encoder width H (the authors' 800)", group="model", low=1, nullable=True,
       unset="200 with the product decoder, 800 with the mixture", flags=("--t-hidden-size",)),
    _o("embedding_size", "int", None, "embedding size E of words and topics", group="model", low=1, nullable=True,
       unset="300, or the size of --embeddings", flags=("--rho-size", "--emb-size")),
    _o("activation", "str", "relu", "encoder activation", group="model", choices=tuple(sorted(ACTIVATIONS)),
       flags=("--theta-act",)),
    _o("dropout", "float", 0.0, "encoder dropout", group="model", low=0.0, high=1.0, high_open=True,
       flags=("--enc-drop",)),
    _o("background", "bool", True, "with --decoder mixture: add each word's log corpus frequency to the topic "
       "logits, so topics model deviations from it instead of all learning the frequent words (0 = the authors' "
       "model); the product decoder learns each word's shift itself", group="model",
       flags=("--background",), cli="01"),
    _o("similarity", "str", "cosine", "how topic-word logits come from the embeddings: the paper's dot product, or "
       "their cosine / --temperature, which keeps long (frequent-word) embeddings from leading every topic",
       group="model", choices=SIMILARITIES, flags=("--similarity",)),
    _o("temperature", "float", None, "with --similarity cosine: the logits span [-1/t, 1/t]", group="model",
       low=0.0, low_open=True, nullable=True, unset="0.5 with the product decoder, 0.1 with the mixture",
       flags=("--temperature",)),
    _o("decoder", "str", "product", "how a document's words are predicted from its topics: the paper's mixture "
       "theta @ beta, or a product of experts softmax(BN(theta @ S)) over each word's topic shares S (ProdLDA's "
       "decoder on ETM's embeddings), whose topics only raise their own words", group="model", choices=DECODERS,
       flags=("--decoder",)),
    _o("ecr_weight", "float", None, "weight of ECRTM's embedding-clustering regulariser: an optimal-transport "
       "cost that pulls each topic embedding towards its own cluster of word embeddings (on the unit sphere with "
       "--similarity cosine), against topics sharing words (0 = off)", group="model", low=0.0, nullable=True,
       unset="with the product decoder, unseeded, the mean training-document length in tokens / 8; otherwise 0",
       flags=("--ecr-weight",)),
    _o("ecr_alpha", "float", 20.0, "inverse temperature of that regulariser's Sinkhorn transport plan",
       group="model", low=0.0, low_open=True, flags=("--ecr-alpha",)),
    _o("ecr_word_mass", "str", "sqrt-frequency", "each word's share of the mass that regulariser transports to "
       "the topics: proportional to the square root of its training count, or equal (ECRTM's: every topic takes "
       "1/K of the vocabulary)", group="model", choices=ECR_WORD_MASSES, flags=("--ecr-word-mass",)),
    # pretrained embeddings ---------------------------------------------------------
    _o("corpus_embeddings", "bool", None, "without --embeddings: learn word vectors of the training documents "
       "first (--corpus-embedding-method) and keep the word embeddings fixed at them (the labelled ETM with no "
       "outside vectors); on "
       "short documents, embeddings learned with the topics lead them to rare words", group="embeddings",
       nullable=True, unset=f"on when the mean training document has fewer than {SHORT_DOCUMENT_TOKENS} tokens "
       "(titles, short posts), off otherwise", flags=("--corpus-embeddings",), cli="01"),
    _o("corpus_embedding_method", "str", None, "how those corpus vectors are made: the SVD of the training "
       "documents' positive PMI matrix, in about a second, or skip-gram (gensim), some ten seconds",
       group="embeddings", choices=CORPUS_EMBEDDING_METHODS, nullable=True,
       unset=f"ppmi when the mean training document has fewer than {PPMI_DOCUMENT_TOKENS} tokens, skipgram "
       "otherwise", flags=("--corpus-embedding-method",)),
    _o("fine_tune_embeddings", "bool", False, "train the pretrained embeddings too instead of keeping them fixed",
       group="embeddings", flags=("--fine-tune-embeddings",), cli="switch"),
    _o("missing_embeddings", "str", "train", "words without a pretrained vector get a seeded random one that is "
       "trained or kept fixed", group="embeddings", choices=MISSING_EMBEDDINGS, flags=("--missing-embeddings",)),
    # seeded topics -----------------------------------------------------------------
    _o("n_free_topics", "int", None, "with --seeds: free topics beside the seeded ones (K = seeds + this)",
       group="seeding", low=0, nullable=True, unset="--num-topics is K", flags=("--free-topics",)),
    _o("seed_strength", "float", 1.0, "share of each seed word's count given to its topic as prior pseudo-counts",
       group="seeding", low=0.0, flags=("--seed-strength",)),
    _o("seed_schedule", "str", "constant", "keep the seed prior (constant) or decay it to zero over training",
       group="seeding", choices=SEED_SCHEDULES, flags=("--seed-schedule",)),
    _o("seed_init", "bool", True, "start each seeded topic's embedding at its seed words' mean embedding",
       group="seeding"),
    _o("seed_doc_prior", "float", 6.0, "in training, raise the prior of a document's seeded topics by this times "
       "log(1 + count of their seed words in it), keyATM-style (0 = off)", group="seeding", low=0.0,
       flags=("--seed-doc-prior",)),
    _o("seed_doc_centered", "bool", True, "take that log count relative to its mean over the training documents, so "
       "the prior picks which documents a seeded topic takes without drawing every document that mentions a seed "
       "word away from the free topics (0 = raise only)", group="seeding", flags=("--seed-doc-centered",),
       cli="01"),
    # optimisation ------------------------------------------------------------------
    _o("epochs", "int", None, "maximum epochs", low=1, nullable=True,
       unset="about 2,000 steps, between 20 and 100 epochs", flags=("--epochs",), config="epochs",
       config_default=20),
    _o("batch_size", "int", None, "documents per step", low=1, nullable=True,
       unset="about 20 steps per epoch, at most the authors' 1000, which corpora of 20,000 training documents or "
             "more get", flags=("--batch-size",), config="batch_size", config_default=1000),
    _o("lr", "float", 0.005, "learning rate", low=0.0, low_open=True, flags=("--lr",), config="lr"),
    _o("optimizer", "str", "adam", "optimizer", choices=OPTIMIZERS, flags=("--optimizer",), config="optimizer"),
    _o("weight_decay", "float", 1.2e-6, "weight decay (L2 penalty)", low=0.0, flags=("--wdecay",),
       config="weight_decay"),
    _o("clip", "float", 0.0, "gradient-norm clipping, 0 = off", low=0.0, flags=("--clip",), config="clip"),
    _o("bow_norm", "bool", True, "normalise bags of words for the encoder", flags=("--bow-norm",), cli="01",
       config="bow_norm"),
    _o("anneal_lr", "bool", False, "divide lr by lr_factor when validation stalls", flags=("--anneal-lr",),
       cli="01", config="anneal_lr"),
    _o("nonmono", "int", 10, "epochs of the annealing rule", low=1, flags=("--nonmono",), config="nonmono"),
    _o("lr_factor", "float", 4.0, "annealing divisor", low=1.0, low_open=True, flags=("--lr-factor",),
       config="lr_factor"),
    _o("patience", "int", 10, "stop after this many epochs without a better validation perplexity ('off' = run "
       "every epoch)", low=1, nullable=True, unset="off", flags=("--patience",), config="patience",
       config_default=None),
    _o("kl_warmup", "int", 0, "epochs of linear KL warm-up, 0 = off", low=0, flags=("--kl-warmup",),
       config="kl_warmup"),
    _o("kl_weight", "float", None, "multiplier of the KL term; below 1 documents concentrate on fewer topics, "
       "which makes topics more distinct (1 = the authors' objective)", low=0.0, low_open=True, nullable=True,
       unset="0.05 with the product decoder, 0.1 with the mixture", flags=("--kl-weight",), config="kl_weight",
       config_default=1.0),
    _o("lr_schedule", "str", "constant", "learning-rate schedule (constant = the authors')", choices=LR_SCHEDULES,
       flags=("--lr-schedule",), config="lr_schedule"),
    _o("ema_decay", "float", 0.0, "per-step decay of weight averaging; the averaged weights are validated and "
       "kept, 0 = off", low=0.0, high=1.0, high_open=True, flags=("--ema-decay",), config="ema_decay"),
    _o("encoder_token_drop", "float", 0.5, "share of each training document's tokens hidden from the encoder at "
       "every step; trains it for document completion (0.5 lowers 20NG test perplexity ~6%; 0 = the authors')",
       low=0.0, high=1.0, high_open=True, flags=("--encoder-token-drop",), config="encoder_token_drop",
       config_default=0.0),
    _o("lazy_updates", "bool", False, "row-sparse gradients and a lazy Adam for the V x H first encoder layer: "
       "only the rows of words in a batch are updated (pays when a batch holds a small share of the vocabulary; "
       "slower than exact Adam at 50k words on a 2-core CPU, see docs/benchmarks/speed.md; one process only)",
       flags=("--lazy-updates",), cli="switch", config="lazy_updates"),
    _o("random_state", "int", 2019, "random seed", low=0, nullable=True, flags=("--seed",),
       config="seed"),
    _o("n_init", "int", 1, "train this many times from different seeds and keep the run whose topics score best on "
       "the validation documents (coherence x diversity, the estimate etm tune uses); n times the training time, "
       "and it needs a validation split", low=1, flags=("--n-init",)),
    _o("valid_size", "float", 0.1, "share of training documents held out for validation when fit is given texts "
       "or a single corpus (0 = none; etm train takes it from the corpus or --valid-size)", low=0.0, high=0.9),
    # checkpoints ---------------------------------------------------------------------
    _o("checkpoint_every", "int", 5, "epochs between checkpoints", group="checkpoints", low=1,
       flags=("--checkpoint-every",), config="checkpoint_every"),
    # TrainingConfig only (the estimator sets them) ----------------------------------------
    _o("eval_batch_size", "int", 1000, "documents per inference batch", low=1, config="eval_batch_size",
       estimator=False),
    _o("eval_every", "int", 1, "validate every this many epochs", low=1, config="eval_every", estimator=False),
]}

#: Estimator parameter -> default (``TopicModel.__init__``'s signature).
DEFAULTS: dict[str, Any] = {o.name: o.default for o in OPTIONS.values() if o.estimator}
#: ``TrainingConfig`` field -> default.
CONFIG_DEFAULTS: dict[str, Any] = {o.config: o.training_default for o in OPTIONS.values() if o.config}


# -- checks ----------------------------------------------------------------------------
def _bound(x: float) -> str:
    return f"{x:g}"


def _range_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{_bound(low)}, {_bound(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {_bound(low)}"
    return f"{'<' if high_open else '<='} {_bound(high)}"  # type: ignore[arg-type]


def _outside(value: float, low: float | None, high: float | None, low_open: bool, high_open: bool) -> bool:
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    return below or above


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "int":
        return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if kind == "float":
        return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if kind == "bool":
        return isinstance(value, (bool, np.bool_))
    if kind == "path":
        return isinstance(value, (str, os.PathLike))
    return isinstance(value, str)


def check_value(name: str, value: Any, kind: str, *, nullable: bool = False, low: float | None = None,
                high: float | None = None, low_open: bool = False, high_open: bool = False,
                choices: tuple[Any, ...] | None = None) -> None:
    """Raise TypeError / ValueError naming ``name``, the value received and what is allowed.

    The one message style of every option check: ``"{name} must be {what}, got
    {value!r}"``, and ``"{name}={value!r} is not one of [...]"`` for choices.
    """
    if value is None and nullable:
        return
    if not _type_ok(value, kind):
        raise TypeError(f"{name} must be {_KINDS[kind]}{' or None' if nullable else ''}, got {value!r}")
    if choices is not None and value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {list(choices)}")
    if kind == "float" and not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if kind in ("int", "float") and _outside(value, low, high, low_open, high_open):
        raise ValueError(f"{name} must be {_range_text(low, high, low_open, high_open)}, got {value!r}")


def check_option(name: str, value: Any, where: str = "estimator") -> None:
    """Check one option's value; ``where`` is "estimator" (and the CLI) or "config" (``TrainingConfig``).

    In ``TrainingConfig`` the message names the config field, and None is
    accepted only where that field's default is None.
    """
    option = OPTIONS[name]
    if where == "config":
        option.check(value, option.config, nullable=option.training_default is None)
    else:
        option.check(value)


def validate_options(values: Mapping[str, Any]) -> None:
    """Check estimator parameter values (name -> value) against the table, in table order."""
    for name, option in OPTIONS.items():
        if name in values:
            option.check(values[name])


def validate_config(config: Any) -> None:
    """Check every field of a ``TrainingConfig`` that the table describes."""
    for name, option in OPTIONS.items():
        if option.config:
            check_option(name, getattr(config, option.config), "config")


# -- the command line -------------------------------------------------------------------
def _dual(flag: str) -> list[str]:
    """``--num-topics`` plus the authors' ``--num_topics`` spelling."""
    return [flag, "--" + flag[2:].replace("-", "_")] if "-" in flag[2:] else [flag]


def _parse_value(option: Option) -> Any:
    """argparse ``type=``: the text converted to the option's kind and checked like the estimator checks it."""
    convert = {"int": int, "float": float}.get(option.kind, str)

    def parse(text: str) -> Any:
        if option.nullable and text.strip().lower() in ("off", "none"):
            return None
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {option.kind} value: {text!r}") from None
        try:
            option.check(value)
        except (TypeError, ValueError) as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return value

    parse.__name__ = option.kind
    return parse


def _parse_zero_one(text: str) -> bool:
    """A bool given as 0 or 1 (the authors' ``--bow_norm 1``)."""
    try:
        number = int(text)
    except ValueError:
        number = -1
    if number not in (0, 1):
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from 0, 1)")
    return bool(number)


def training_groups(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The argument groups of ``etm train`` (see :data:`GROUPS`), empty, in order."""
    return {key: parser.add_argument_group(title) for key, title in GROUPS.items()}


def add_training_options(groups: Mapping[str, Any]) -> None:
    """Add every option with flags to its group (from :func:`training_groups`); ``dest`` is the option's name."""
    for option in OPTIONS.values():
        if not option.flags:
            continue
        flags = [spelling for flag in option.flags for spelling in _dual(flag)]
        kw: dict[str, Any] = {"dest": option.name, "default": option.default, "help": option.help_text()}
        if option.cli == "switch":
            kw["action"] = "store_true"
        elif option.cli == "01":
            kw.update(type=_parse_zero_one, metavar="{0,1}")
        else:
            kw.update(type=_parse_value(option), choices=option.choices)
            if option.choices is None:  # the metavar of the first flag, as argparse would name it
                kw["metavar"] = option.flags[0][2:].replace("-", "_").upper()
        groups[option.group].add_argument(*flags, **kw)


def estimator_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``TopicModel`` keyword arguments of every table option on the command line, from parsed ``etm train`` args."""
    return {o.name: getattr(args, o.name) for o in OPTIONS.values() if o.flags}
