"""One validated value for how to compress: the library, the CLI, the app, batch mode and the bench all
build a :class:`CompressionSettings` (here, or from command-line arguments with :func:`add_arguments` /
:meth:`CompressionSettings.from_args`), so the same six choices are checked in one place and a batch run's
resume hash sees exactly what changes an output."""
from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from .errors import InvalidSettingError
from .selection import SPAN_TOKENS, check_budget, check_phrase_strength, check_rate, check_spans, check_threshold

CLASSIFIER = "classifier"
#: Phrase strength when none is given and HyCo2's classifier selects. Measured on one H200 (the s7
#: checkpoint, 1,295 unseen questions, same kept count): +2.0 F1 [+0.5, +3.7] and +4.5 answer-contains
#: [+2.6, +6.5] at rate 0.10, +1.2 / +2.1 (beyond the paired CI) on 10-passage inputs; see docs/DESIGN.md.
DEFAULT_PHRASES = 0.9


@dataclass(frozen=True)
class CompressionSettings:
    """How much to keep (at most one of ``rate``, ``budget``, ``threshold``; none = the checkpoint's
    default rate), who selects it, and with which seed.

    - ``rate``: share of context tokens kept verbatim, in (0, 1].
    - ``budget``: number of context tokens kept verbatim (per context; over all chunks of a long one).
    - ``threshold``: keep every word whose keep probability reaches it (HyCo2's classifier only).
    - ``method``: ``hyco2`` (soft tokens + kept tokens) or a peer's name (kept tokens only).
    - ``selector``: HyCo2's hard view: its trained ``classifier`` or a peer's selection beside the soft tokens.
    - ``phrases``: 0–1, kept words pull in their neighbours (classifier only; 0 = off; None = 0.9 when the
      classifier keeps a rate or budget, the measured default: a kept name or number brings its word).
    - ``spans``: the kept text as at most this many contiguous stretches (classifier only; 0 = whole words
      anywhere; None = one stretch per ``SPAN_TOKENS`` (60) kept tokens when the classifier keeps a rate or
      budget, so a paragraph keeps words and a document list a few passages' worth of whole text).
    - ``seed``: for the methods that draw (random drop).
    """

    rate: float | None = None
    budget: int | None = None
    threshold: float | None = None
    method: str = "hyco2"
    selector: str = CLASSIFIER
    phrases: float | None = None
    spans: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        given = [n for n in ("rate", "budget", "threshold") if getattr(self, n) is not None]
        if len(given) > 1:
            raise InvalidSettingError(f"Give at most one of rate, budget or threshold (got {' and '.join(given)}).")
        if self.rate is not None:
            check_rate(self.rate)
        if self.budget is not None:
            check_budget(self.budget)
        if self.threshold is not None:
            check_threshold(self.threshold)
        from .baselines import available_methods  # the peers import torch: not needed to parse a command line

        methods = available_methods()
        if self.method not in methods:
            raise InvalidSettingError(f"Unknown method {self.method!r}; choose one of: {', '.join(methods)}.")
        if self.selector != CLASSIFIER and self.selector not in methods[1:]:
            raise InvalidSettingError(f"Unknown selector {self.selector!r}; choose {CLASSIFIER} or one of: "
                                      f"{', '.join(methods[1:])}.")
        if self.method != "hyco2" and self.selector != CLASSIFIER:
            raise InvalidSettingError("selector only applies to method='hyco2' (a peer is its own selector).")
        if self.phrases is not None:
            check_phrase_strength(self.phrases)
        if self.spans is not None:
            check_spans(self.spans)
        if self.spans and (not self.classifier_selects or self.threshold is not None):
            raise InvalidSettingError("spans applies to HyCo2's classifier keeping a rate or budget (method='hyco2', "
                                      "selector='classifier', no threshold).")
        if self.threshold is not None and not self.classifier_selects:
            raise InvalidSettingError("threshold mode needs HyCo2's classifier (method='hyco2', selector='classifier').")
        if self.phrases and not self.classifier_selects:
            raise InvalidSettingError("phrases applies to HyCo2's classifier (method='hyco2', selector='classifier').")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InvalidSettingError(f"seed must be a whole number, not {self.seed!r}.")

    @property
    def classifier_selects(self) -> bool:
        """HyCo2's own classifier picks the kept tokens (threshold, phrases and long inputs need it)."""
        return self.method == "hyco2" and self.selector == CLASSIFIER

    @property
    def phrase_strength(self) -> float:
        """The phrase strength the selection uses: the given one, else the default when the classifier keeps
        a budget (threshold mode keeps what it promises, every word at or above the threshold, unless
        phrases are asked for)."""
        if self.phrases is not None:
            return float(self.phrases)
        return DEFAULT_PHRASES if self.classifier_selects and self.threshold is None else 0.0

    @property
    def span_count(self) -> int | None:
        """The stretches the selection keeps at most: the given number; None (one per ``SPAN_TOKENS`` kept
        tokens) when the classifier keeps a budget and none was given; else 0 (threshold mode keeps every
        word at or above it, a peer keeps what it keeps)."""
        if self.spans is not None:
            return int(self.spans)
        return None if self.classifier_selects and self.threshold is None else 0

    @property
    def soft(self) -> bool:
        """The method adds soft tokens (HyCo2 with any hard view); a peer keeps tokens only."""
        return self.method == "hyco2"

    @property
    def label(self) -> str:
        """The method as results name it: ``hyco2``, a peer, or ``hyco2+mig`` for another hard view."""
        return self.method if self.selector == CLASSIFIER else f"{self.method}+{self.selector}"

    def with_default_rate(self, rate: float) -> "CompressionSettings":
        """These settings, with ``rate`` filled in when none of rate, budget and threshold was given."""
        if self.rate is None and self.budget is None and self.threshold is None:
            return replace(self, rate=rate)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The settings as results record them: the phrase strength resolved (what made the output)."""
        spans = self.span_count
        return {**asdict(self), "phrases": self.phrase_strength,
                "spans": spans if spans is not None else f"1 per {SPAN_TOKENS} kept tokens"}

    @classmethod
    def build(cls, settings: "CompressionSettings | None" = None, **overrides: Any) -> "CompressionSettings":
        """``settings`` (or the defaults) with the keyword arguments that are not None laid over it."""
        base = settings if settings is not None else cls()
        if not isinstance(base, CompressionSettings):
            raise InvalidSettingError(f"settings must be a CompressionSettings, not {type(base).__name__}.")
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(given) - {f.name for f in fields(cls)}
        if unknown:
            raise InvalidSettingError(f"Unknown setting(s): {', '.join(sorted(unknown))}.")
        if {"rate", "budget", "threshold"} & set(given):  # a new amount replaces the old one
            base = replace(base, rate=None, budget=None, threshold=None)
        return replace(base, **given)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "CompressionSettings":
        """From the options :func:`add_arguments` added (absent ones keep their defaults)."""
        names = {f.name for f in fields(cls)}
        return cls.build(**{k: v for k, v in vars(args).items() if k in names})


def whole_number(minimum: int):
    """An argparse type: a whole number ≥ ``minimum``, or argparse's one-line error (exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value
    return parse


def add_arguments(parser: argparse.ArgumentParser, *, selector: bool = True, phrases: bool = True,
                  budget_help: str = "number of context tokens kept verbatim") -> None:
    """The compression options every command line shares (CLI, batch); read back with ``from_args``."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--rate", type=float, default=None,
                   help="share of context tokens kept verbatim, in (0, 1] (default: the checkpoint's, 0.15)")
    g.add_argument("--budget", type=int, default=None, help=budget_help)
    g.add_argument("--threshold", type=float, default=None,
                   help="keep every word whose keep probability is at least this (HyCo2's classifier only)")
    parser.add_argument("--method", default="hyco2", help="hyco2, or a peer (kept tokens only): see `hyco2 methods`")
    if selector:
        parser.add_argument("--selector", default=CLASSIFIER,
                            help="HyCo2's hard view: its trained classifier, or a peer's selection (e.g. mig)")
    if phrases:
        parser.add_argument("--phrases", type=float, default=None,
                            help=f"0-1: kept words pull in their neighbours (HyCo2's classifier only; default "
                                 f"{DEFAULT_PHRASES}, 0 = off)")
        parser.add_argument("--spans", type=whole_number(0), default=None,
                            help=f"keep the text as at most this many contiguous stretches (HyCo2's classifier "
                                 f"only; default: one per {SPAN_TOKENS} kept tokens; 0 = whole words anywhere)")
    parser.add_argument("--seed", type=whole_number(0), default=None, help="seed for methods that draw (random)")
