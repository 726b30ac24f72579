"""User-defined groupings: value merges and numeric bands, checked against the values a cohort has."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from app.cohorts.config import parse_config
from app.cohorts.groupings import Grouping, derive, grouping_problems
from app.core.errors import InputError

SKIN = Grouping(
    name="skin_band", attribute="skin_type", groups={"I-II": ["1", "2"], "III-IV": ["3", "4"], "V-VI": ["5", "6"]}
)
AGE = Grouping(name="age_band", attribute="age_group", bands=[(0, 60), (60, None)])


def column(values: list[str | None]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def test_value_groups_merge_and_keep_missing() -> None:
    columns = {"skin_type": column(["1", "2", "3", "6", None, "5", "4"])}
    assert grouping_problems([SKIN], columns) == []
    derived = derive(columns, [SKIN])
    assert list(derived["skin_band"]) == ["I-II", "I-II", "III-IV", "V-VI", None, "V-VI", "III-IV"]
    assert derived["skin_type"] is columns["skin_type"], "the source attribute stays as it is"


def test_bands_over_age_group_labels_and_numbers() -> None:
    labels = {"age_group": column(["<40", "40-59", "60-74", ">=75", None])}
    assert grouping_problems([AGE], labels) == []
    assert list(derive(labels, [AGE])["age_band"]) == ["0-59", "0-59", ">=60", ">=60", None]
    ages = {"age": column(["12", "59.5", "60", "88"])}
    bands = Grouping(name="age_band", attribute="age", bands=[(None, 40), (40, 60), (60, None)])
    assert grouping_problems([bands], ages) == []
    assert list(derive(ages, [bands])["age_band"]) == ["<40", "40-59", ">=60", ">=60"]


def test_values_that_do_not_fit_are_refused_by_field() -> None:
    columns = {"skin_type": column(["1", "2", "3", "4", "5", "6"]), "age_group": column(["<40", "40-59", ">=75"])}
    partial = Grouping(name="b", attribute="skin_type", groups={"light": ["1", "2", "3", "9"], "dark": ["4"]})
    straddle = Grouping(name="c", attribute="age_group", bands=[(0, 50), (50, None)])
    unknown_attribute = Grouping(name="d", attribute="race", groups={"x": ["y"]})
    clash = Grouping(name="skin_type", attribute="age_group", bands=[(0, None)])
    problems = grouping_problems([partial, straddle, unknown_attribute, clash], columns)
    fields = [p["field"] for p in problems]
    assert fields == [
        "groupings.0.groups",  # 5 and 6 in no group
        "groupings.0.groups",  # 9 does not occur
        "groupings.1.bands",  # 40-59 falls across 50
        "groupings.2.attribute",
        "groupings.3.name",
    ]
    assert "'5', '6'" in problems[0]["message"] and "in no group" in problems[0]["message"]
    assert "'9'" in problems[1]["message"] and "'40-59'" in problems[2]["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"groups": {"a": ["1"], "b": ["1", "2"]}}, "'1' are in two groups"),
        ({"bands": [[0, 50], [40, None]]}, "bands overlap"),
        ({"bands": [[60, 40]]}, "is empty"),
        ({"groups": {"a": ["1"]}, "bands": [[0, 1]]}, "exactly one of groups and bands"),
        ({}, "exactly one of groups and bands"),
    ],
)
def test_grouping_shapes_that_cannot_work_are_refused(body: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Grouping.model_validate({"name": "g", "attribute": "a", **body})


def test_cohort_config_names_the_grouping_field() -> None:
    with pytest.raises(InputError) as info:
        parse_config({"name": "c", "preset": "fitzpatrick17k", "groupings": [{"name": "g", "attribute": "skin_type"}]})
    assert info.value.errors[0]["field"] == "groupings.0"
    with pytest.raises(InputError, match="same name"):
        parse_config({"name": "c", "preset": "fitzpatrick17k", "groupings": [SKIN.model_dump(), SKIN.model_dump()]})
