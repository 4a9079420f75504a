"""The search space of :func:`etm.tuning.tune`: which options are searched, over which ranges.

A space maps an option of :data:`etm.options.OPTIONS` (its estimator name,
e.g. ``"kl_weight"``) to a :class:`Range` (numbers, optionally on a log
scale or in steps), a :class:`Choice` (a few values) or a plain value (the
option is fixed, not searched). :func:`default_space` centres the searched
ranges on the table's defaults, so they follow when a default changes:

==========================  ==================================================
option                      default range
==========================  ==================================================
``n_topics`` (K)            10 to 100, log scale
``kl_weight``               default / 5 to default x 5 (at most 1, the ELBO), log scale
``temperature``             default / 2 to default x 2, log scale
``encoder_token_drop``      0 to 0.7 (and the default when it lies above)
``lr``                      default / 4 to default x 4, log scale
==========================  ==================================================

On the command line a range is ``LOW:HIGH``, ``LOW:HIGH:log`` or (integers)
``LOW:HIGH:STEP``, a choice ``a,b,c`` and a fixed value a single value
(:func:`parse_spec`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from etm.options import DECODER_DEFAULTS, DEFAULTS, OPTIONS

__all__ = ["Range", "Choice", "default_space", "parse_spec", "check_space", "describe", "default_trial",
           "edge_settings"]

#: Options a search may not touch: settings of where and how a trial runs, or of the validation split, and
#: ``n_init`` (a study already chooses among its runs on validation; restarts inside a trial would report
#: every epoch number once per run to the pruner).
NOT_SEARCHABLE = ("checkpoint_every", "valid_size", "lazy_updates", "n_init")
#: Within this share of a searched range (of its logarithm on a log scale) from an end, a value is at that edge.
EDGE_SHARE = 0.05


@dataclass(frozen=True)
class Range:
    """Numbers from ``low`` to ``high`` (both included); ``log`` samples their logarithm; ``step`` (integers)."""

    low: float
    high: float
    log: bool = False
    step: int | None = None

    def __str__(self) -> str:
        tail = ":log" if self.log else f":{self.step}" if self.step else ""
        return f"{_text(self.low)}:{_text(self.high)}{tail}"


@dataclass(frozen=True)
class Choice:
    """One of a few values; the first is tried first."""

    values: tuple[Any, ...]

    def __str__(self) -> str:
        return ",".join(_text(v) for v in self.values)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def default_space() -> dict[str, Any]:
    """The default search space, around the defaults of :mod:`etm.options` (see the module docstring)."""
    kl, lr, drop = default_of("kl_weight"), DEFAULTS["lr"], DEFAULTS["encoder_token_drop"]
    t = default_of("temperature")
    return {
        "n_topics": Range(10, 100, log=True),
        "kl_weight": Range(kl / 5, max(kl, min(1.0, kl * 5)), log=True),
        "temperature": Range(t / 2, t * 2, log=True),
        "encoder_token_drop": Range(0.0, max(0.7, drop)),
        "lr": Range(lr / 4, lr * 4, log=True),
    }


def default_of(name: str) -> Any:
    """An option's default for an unseeded model: the table's, or the product decoder's where that is None."""
    value = DEFAULTS[name]
    return DECODER_DEFAULTS["product"].get(name, value) if value is None else value


def default_trial(space: Mapping[str, Any]) -> dict[str, Any]:
    """The searched options at their defaults (clipped into their ranges): the study's first trial."""
    out: dict[str, Any] = {}
    for name, spec in space.items():
        default = default_of(name)
        if isinstance(spec, Range):
            value = min(max(default, spec.low), spec.high)
            if spec.step:
                value = spec.low + round((value - spec.low) / spec.step) * spec.step
            out[name] = int(value) if OPTIONS[name].kind == "int" else float(value)
        elif isinstance(spec, Choice):
            out[name] = default if default in spec.values else spec.values[0]
    return out


def edge_settings(params: Mapping[str, Any], space: Mapping[str, Any]) -> dict[str, str]:
    """The searched numbers of ``params`` at an end of their :class:`Range`: ``{name: "low" or "high"}``.

    Why: when a chosen trial sits at the edge of its range, the best setting
    may lie beyond it (a study on 20 Newsgroups put K at the lowest it could
    try), so the user should widen that range rather than read the edge as
    the answer. An end the option itself cannot pass (``encoder_token_drop``
    at 0) is not an edge.
    """
    out: dict[str, str] = {}
    for name, spec in space.items():
        if not isinstance(spec, Range) or name not in params or not spec.low < spec.high:
            continue
        option = OPTIONS[name]
        scale = math.log if spec.log and spec.low > 0 else float
        low, high, value = scale(spec.low), scale(spec.high), scale(float(params[name]))
        share = (value - low) / (high - low)
        if share <= EDGE_SHARE and not (option.low is not None and spec.low <= option.low):
            out[name] = "low"
        elif share >= 1 - EDGE_SHARE and not (option.high is not None and spec.high >= option.high):
            out[name] = "high"
    return out


# -- checks ---------------------------------------------------------------------------
def _option(name: str) -> Any:
    option = OPTIONS.get(name)
    searchable = sorted(n for n, o in OPTIONS.items() if o.estimator and n not in NOT_SEARCHABLE)
    if option is None or not option.estimator or name in NOT_SEARCHABLE:
        raise ValueError(f"{name!r} is not an option a search can set; choose from {searchable}")
    return option


def check_space(space: Mapping[str, Any]) -> None:
    """Raise ValueError naming the option when a range is empty or inverted, or leaves the option's bounds."""
    for name, spec in space.items():
        option = _option(name)
        if isinstance(spec, Range):
            if option.kind not in ("int", "float"):
                raise ValueError(f"{name} is {option.kind}, not a number: give its values, e.g. {name}=a,b")
            for end in (spec.low, spec.high):
                option.check(int(end) if option.kind == "int" and float(end).is_integer() else end, name)
            if not spec.low < spec.high:
                what = "empty" if spec.low == spec.high else "inverted"
                raise ValueError(f"the range {name}={spec} is {what}: give LOW < HIGH, or one value to fix {name}")
            if spec.log and spec.low <= 0:
                raise ValueError(f"the log range {name}={spec} must start above 0")
            if spec.step is not None:
                if option.kind != "int" or spec.step < 1 or (spec.high - spec.low) % spec.step:
                    raise ValueError(f"the range {name}={spec}: a step needs integers, and HIGH - LOW must be a "
                                     "multiple of it")
                if spec.log:
                    raise ValueError(f"the range {name}={spec}: choose a step or a log scale, not both")
        elif isinstance(spec, Choice):
            if not spec.values:
                raise ValueError(f"{name} has an empty list of values")
            for value in spec.values:
                option.check(value, name)
        else:
            option.check(spec, name)


# -- parsing ----------------------------------------------------------------------------
def _convert(option: Any, text: str, name: str) -> Any:
    text = text.strip()
    try:
        if option.kind == "bool":
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if option.kind == "int":
            return int(text)
        if option.kind == "float":
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
            return value
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not {'0 or 1' if option.kind == 'bool' else 'a number'}") from None
    if text == "":
        raise ValueError(f"{name}: an empty value")
    return text


def parse_spec(name: str, text: str) -> Any:
    """A :class:`Range`, :class:`Choice` or fixed value for option ``name`` from command-line text.

    ``"10:100"``, ``"0.1:1:log"``, ``"10:100:10"`` are ranges; ``"0,1"`` and
    ``"relu,tanh"`` choices; ``"0.3"`` a fixed value. The result is checked
    (:func:`check_space`), so an empty or inverted range is refused here.
    """
    option = _option(name)
    if ":" in text:
        parts = text.split(":")
        if len(parts) not in (2, 3) or not parts[0].strip() or not parts[1].strip():
            raise ValueError(f"{name}={text!r} is not a range: write LOW:HIGH, LOW:HIGH:log or LOW:HIGH:STEP")
        low, high = (_convert(option, p, name) for p in parts[:2])
        log, step = False, None
        if len(parts) == 3:
            if parts[2].strip() == "log":
                log = True
            else:
                step = _convert(OPTIONS["n_topics"], parts[2], f"{name} step")
        spec: Any = Range(low, high, log=log, step=step)
    elif "," in text:
        spec = Choice(tuple(_convert(option, p, name) for p in text.split(",")))
    else:
        spec = _convert(option, text, name)
    check_space({name: spec})
    return spec


def describe(space: Mapping[str, Any]) -> dict[str, str]:
    """The space as text, option -> spec (what the study records and the log prints)."""
    return {name: str(spec) if isinstance(spec, (Range, Choice)) else f"fixed {_text(spec)}"
            for name, spec in space.items()}


def suggest(trial: Any, space: Mapping[str, Any]) -> dict[str, Any]:
    """The estimator settings of one Optuna trial: its suggestions for the searched options, the fixed ones."""
    out: dict[str, Any] = {}
    for name, spec in space.items():
        if isinstance(spec, Range):
            if OPTIONS[name].kind == "int":
                out[name] = trial.suggest_int(name, int(spec.low), int(spec.high), step=spec.step or 1, log=spec.log)
            else:
                out[name] = trial.suggest_float(name, float(spec.low), float(spec.high), log=spec.log)
        elif isinstance(spec, Choice):
            out[name] = trial.suggest_categorical(name, list(spec.values))
        else:
            out[name] = spec
    return out
