"""Groupings a user defines: coarser groups made by merging an attribute's values, so that small groups
are pooled by design (Fitzpatrick I–II / III–IV / V–VI, age bands) rather than dropped from a report as
``insufficient``.

A grouping is a *derived attribute*: its name becomes an attribute like any other, usable as a training
group (``sensitive_attributes``) and reported on. Two kinds:

- ``groups``: a label per list of values, e.g. ``{"I-II": ["1", "2"], "III-IV": ["3", "4"]}``.
- ``bands``: numeric bands ``[low, high)`` (``null``: unbounded), e.g. ``[[0, 40], [40, 60], [60, null]]``.
  A value is a number (a manifest column of ages) or an ``age_group`` label (``<40``, ``40-59``,
  ``>=75``, which stand for ages 0–39, 40–59 and 75 up): a band takes every value whose whole range lies
  in it, so band edges must fall on the cohort's ``age_bins``. Labels: ``40-59`` for ``[40, 60)`` with
  whole-number edges (as ``age_group`` writes them), ``<40``, ``>=60`` for open bands.

Checked against the values the cohort actually has (``grouping_problems``): a value no item has, a value
in two groups or bands, and a value in no group are all refused (422, naming the field). A value left
unmapped would silently turn into "missing" and vanish from every report — exactly the silent dropping
groupings exist to prevent — so the user maps every value, explicitly. A missing value stays missing.

Where a grouping is applied to another cohort than the one it was checked on (a model's training
groupings when it is validated externally), a value it does not map is missing (``derive``).

Derived columns are made when a cohort's arrays are loaded (``CohortArrays.with_groupings``; the
cohort's own groupings are kept in its cache), never stored as item data.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from app.core.fields import SafeName

MAX_GROUPINGS = 8
MAX_GROUPS = 64
MAX_VALUES = 1000  # values mapped by one grouping, all groups together
_RANGE = re.compile(r"^(?:<(?P<below>\d+(?:\.\d+)?)|>=(?P<above>\d+(?:\.\d+)?)|(?P<lo>\d+)-(?P<hi>\d+))$")

Label = Annotated[SafeName, StringConstraints(max_length=64)]
Edge = float | None


class Grouping(BaseModel):
    """One derived attribute: ``name`` groups ``attribute``'s values by ``groups`` or by ``bands``."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {
                    "name": "skin_band",
                    "attribute": "skin_type",
                    "groups": {"I-II": ["1", "2"], "III-IV": ["3", "4"], "V-VI": ["5", "6"]},
                },
                {"name": "age_band", "attribute": "age_group", "bands": [[0, 60], [60, None]]},
            ]
        },
    )

    name: Label = Field(description="the derived attribute's name")
    attribute: str = Field(max_length=128, description="the attribute whose values are grouped")
    groups: dict[Label, Annotated[list[str], Field(min_length=1)]] | None = Field(
        default=None, max_length=MAX_GROUPS, description="group label -> the attribute values it takes"
    )
    bands: list[tuple[Edge, Edge]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_GROUPS,
        description="numeric bands [low, high), null: unbounded; for ages and number-valued columns",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Grouping:
        if (self.groups is None) == (self.bands is None):
            raise ValueError("give exactly one of groups and bands")
        if self.groups is not None:
            if not self.groups:
                raise ValueError("groups is empty")
            values = [v for members in self.groups.values() for v in members]
            if len(values) > MAX_VALUES:
                raise ValueError(f"groups map {len(values)} values; at most {MAX_VALUES}")
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                raise ValueError(f"value(s) {', '.join(map(repr, twice))} are in two groups")
        if self.bands is not None:
            for low, high in self.bands:
                if low is not None and high is not None and not low < high:
                    raise ValueError(f"band [{low:g}, {high:g}) is empty: low must be below high")
            ordered = sorted(self.bands, key=lambda b: -math.inf if b[0] is None else b[0])
            for (_, high), (low, _) in itertools.pairwise(ordered):
                if high is None or (low is None or low < high):
                    raise ValueError("bands overlap: a value would be in two bands")
        return self

    def labels(self) -> list[str]:
        if self.groups is not None:
            return list(self.groups)
        return [_band_label(band) for band in self.bands or []]

    def mapping(self, values: Iterable[str]) -> tuple[dict[str, str], list[str], list[str]]:
        """(value -> group label, values in no group, values that straddle a band edge or are not numbers)."""
        mapped: dict[str, str] = {}
        unmapped, unfit = [], []
        lookup = {v: label for label, members in (self.groups or {}).items() for v in members}
        for value in values:
            if self.groups is not None:
                if value in lookup:
                    mapped[value] = lookup[value]
                else:
                    unmapped.append(value)
                continue
            span = _span(value)
            if span is None:
                unfit.append(value)
                continue
            band = next((b for b in self.bands or [] if _contains(b, span)), None)
            if band is not None:
                mapped[value] = _band_label(band)
            elif any(_overlaps(b, span) for b in self.bands or []):
                unfit.append(value)
            else:
                unmapped.append(value)
        return mapped, unmapped, unfit


def grouping_problems(
    groupings: Sequence[Grouping], columns: Mapping[str, Iterable[str | None]], field: str = "groupings"
) -> list[dict[str, str]]:
    """Every problem of ``groupings`` against the attribute ``columns`` they will be applied to (module
    docstring); ``[]`` when they fit. Each names its field (``groupings.0.groups``)."""
    problems: list[dict[str, str]] = []
    names = set(columns)
    for i, grouping in enumerate(groupings):
        where = f"{field}.{i}"
        if grouping.name in names:
            problems.append({"field": f"{where}.name", "message": f"{grouping.name!r} is already an attribute"})
        names.add(grouping.name)
        if grouping.attribute not in columns:
            known = ", ".join(sorted(columns)) or "none"
            problems.append(
                {"field": f"{where}.attribute", "message": f"unknown attribute {grouping.attribute!r}; known: {known}"}
            )
            continue
        observed = sorted({v for v in columns[grouping.attribute] if v is not None})
        mapped, unmapped, unfit = grouping.mapping(observed)
        kind = "groups" if grouping.groups is not None else "bands"
        if unmapped:
            problems.append(
                {
                    "field": f"{where}.{kind}",
                    "message": f"{_quoted(unmapped)} of {grouping.attribute!r} are in no group; every value "
                    "must be mapped (an unmapped value would vanish from every report)",
                }
            )
        if unfit:
            problems.append(
                {
                    "field": f"{where}.bands",
                    "message": f"{_quoted(unfit)} of {grouping.attribute!r} are not numbers or fall across a band "
                    "edge; band edges must fall on the cohort's age_bins",
                }
            )
        unknown = sorted({v for members in (grouping.groups or {}).values() for v in members} - set(observed))
        if unknown:
            problems.append(
                {
                    "field": f"{where}.groups",
                    "message": f"{_quoted(unknown)} do not occur in {grouping.attribute!r} "
                    f"(values: {_quoted(observed)})",
                }
            )
        empty = sorted(set(grouping.labels()) - set(mapped.values()))
        if kind == "bands" and empty and not (unmapped or unfit):
            problems.append({"field": f"{where}.bands", "message": f"band(s) {_quoted(empty)} take no value"})
    return problems


def derive(columns: Mapping[str, np.ndarray], groupings: Sequence[Grouping]) -> dict[str, np.ndarray]:
    """``columns`` plus one derived column per grouping, in order (a grouping may group an earlier
    one). A value the grouping does not map, and a missing one, is missing (``None``); a grouping whose
    attribute is absent is skipped."""
    out = dict(columns)
    for grouping in groupings:
        if grouping.attribute not in out:
            continue
        values = out[grouping.attribute]
        mapped, _, _ = grouping.mapping({v for v in values if v is not None})
        derived = np.empty(len(values), dtype=object)
        derived[:] = [None if v is None else mapped.get(v) for v in values]
        out[grouping.name] = derived
    return out


def parse_groupings(data: Any) -> list[Grouping]:
    """Stored groupings (``model_dump(mode="json")``) back as models."""
    return [Grouping.model_validate(g) for g in data or []]


def _span(value: str) -> tuple[float, float] | None:
    """The range of ages (or numbers) a value stands for, ``[low, high)``; a plain number is ``[x, x]``."""
    try:
        number = float(value)
    except ValueError:
        match = _RANGE.match(value.strip())
        if match is None:
            return None
        if match["below"] is not None:
            return 0.0, float(match["below"])
        if match["above"] is not None:
            return float(match["above"]), math.inf
        return float(match["lo"]), float(match["hi"]) + 1
    return (number, number) if math.isfinite(number) else None


def _contains(band: tuple[Edge, Edge], span: tuple[float, float]) -> bool:
    low = -math.inf if band[0] is None else band[0]
    high = math.inf if band[1] is None else band[1]
    if span[0] == span[1]:  # a number
        return low <= span[0] < high
    return low <= span[0] and span[1] <= high


def _overlaps(band: tuple[Edge, Edge], span: tuple[float, float]) -> bool:
    low = -math.inf if band[0] is None else band[0]
    high = math.inf if band[1] is None else band[1]
    return span[0] < high and low < span[1]


def _band_label(band: tuple[Edge, Edge]) -> str:
    low, high = band
    if low is None and high is None:
        return "all"
    if low is None:
        return f"<{high:g}"
    if high is None:
        return f">={low:g}"
    if float(low).is_integer() and float(high).is_integer():
        return f"{low:g}-{high - 1:g}"
    return f"{low:g} to <{high:g}"


def _quoted(values: Sequence[str], shown: int = 10) -> str:
    text = ", ".join(repr(v) for v in values[:shown])
    return text + (f" and {len(values) - shown} more" if len(values) > shown else "")
