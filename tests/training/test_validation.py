"""Every config that cannot train on a cohort is refused up front, with the field at fault."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from training_helpers import MakeCohort

from app.cohorts.cache import CohortArrays
from app.core.errors import InputError
from app.training.config import TrainingConfig
from app.training.validation import validate_training_config

BASE: dict[str, Any] = {"method": "erm", "sensitive_attributes": ["sex"], "backbone": "small", "batch_size": 32}


def problems(config: dict[str, Any], cohort: CohortArrays) -> list[dict[str, Any]]:
    with pytest.raises(InputError) as err:
        validate_training_config(config, cohort)
    assert err.value.status == 422
    return err.value.errors


@pytest.fixture
def cohort(make_cohort: MakeCohort) -> CohortArrays:
    return make_cohort(n=200)


def test_a_good_config_comes_back_with_the_cache_image_size(cohort: CohortArrays) -> None:
    config = validate_training_config(BASE, cohort)
    assert config.image_size == 32 and config.sensitive_attributes == ["sex"]
    single = {k: v for k, v in BASE.items() if k != "sensitive_attributes"} | {"sensitive_attribute": "sex"}
    assert validate_training_config(single, cohort) == config  # the API's singular spelling


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"backbone": "densenet"}, "backbone"),
        ({"method": "fairprune"}, "method"),
        ({"sensitive_attributes": []}, "sensitive_attributes"),
        ({"learning_rate": 0.1}, "learning_rate"),
        ({"rank_only": True}, "config"),
        ({"method": "fair_multi_exit", "exit_weights": [1, 1]}, "config"),
        ({"method": "fair_multi_exit", "exit_weights": [0, 0, 0, 0, 0]}, "config"),
        ({"threshold_rule": "target_specificity"}, "target_specificity"),
        ({"target_specificity": 0.9}, "target_specificity"),
        ({"threshold_rule": "target_sensitivity"}, "target_sensitivity"),
        ({"threshold_rule": "youden", "target_sensitivity": 0.9}, "target_sensitivity"),
        ({"threshold_rule": "target_sensitivity", "target_sensitivity": 0}, "target_sensitivity"),
        ({"threshold_rule": "constrained"}, "threshold_constraint"),
        ({"threshold_constraint": {"fpr_band": 0.1}}, "threshold_constraint"),
        ({"threshold_rule": "constrained", "threshold_constraint": {}}, "threshold_constraint"),
        ({"threshold_rule": "constrained", "threshold_constraint": {"fpr_band": -1}}, "threshold_constraint.fpr_band"),
        (
            {"threshold_rule": "constrained", "threshold_constraint": {"min_tpr": 0.5, "on_infeasible": "hope"}},
            "threshold_constraint.on_infeasible",
        ),
        ({"exit_threshold_grid": [0.3]}, "exit_threshold_grid"),
    ],
)
def test_invalid_configs(cohort: CohortArrays, override: dict[str, Any], field: str) -> None:
    assert problems({**BASE, **override}, cohort)[0]["field"] == field


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"sensitive_attributes": ["race"]}, "unknown attribute 'race'; the cohort has: age_group, sex"),
        ({"batch_size": 4000}, "exceeds the"),
        ({"image_size": 64}, "holds 32px images"),
        ({"backbone": "resnet18", "image_size": 16}, "at least 32px"),
        ({"pretrained_weights": "/nonexistent/resnet18.pth"}, "no file at"),
        (
            {"threshold_rule": "constrained", "threshold_constraint": {"attribute": "race", "fpr_band": 0.1}},
            "unknown attribute 'race'; the cohort has: age_group, sex",
        ),
        (
            {"threshold_rule": "constrained", "threshold_constraint": {"fpr_band": 0.1, "min_group_count": 500}},
            "0 of the 2 groups of sex have at least 500 positives and 500 negatives in the validation split",
        ),
    ],
)
def test_configs_that_do_not_fit_the_cohort(cohort: CohortArrays, override: dict[str, Any], message: str) -> None:
    found = problems({**BASE, **override}, cohort)
    assert any(message in p["message"] for p in found), found


def test_an_attribute_with_a_single_group(cohort: CohortArrays) -> None:
    site = np.full(len(cohort.labels), "A", dtype=object)
    one_group = dataclasses.replace(cohort, attributes={**cohort.attributes, "site": site})
    [found] = problems({**BASE, "sensitive_attributes": ["site"]}, one_group)
    assert found == {
        "field": "sensitive_attributes",
        "message": "attribute 'site' has 1 group (A) in the training split",
    }


@pytest.mark.parametrize(("split", "label", "message"), [("val", 0, "no positives"), ("test", 1, "no negatives")])
def test_a_split_without_one_class(cohort: CohortArrays, split: str, label: int, message: str) -> None:
    labels = cohort.labels.copy()
    labels[cohort.split == split] = label
    [found] = problems(BASE, dataclasses.replace(cohort, labels=labels))
    assert found == {"field": "cohort", "message": f"the {split} split has {message}"}


def test_every_problem_is_reported_at_once(cohort: CohortArrays) -> None:
    found = problems({**BASE, "sensitive_attributes": ["race"], "batch_size": 4000, "image_size": 64}, cohort)
    assert {p["field"] for p in found} == {"sensitive_attributes", "batch_size", "image_size"}


def test_exit_weights_default_to_the_papers() -> None:
    def weights(**kw: Any) -> tuple[float, ...]:
        return TrainingConfig(sensitive_attributes=["sex"], **kw).resolved_exit_weights()

    assert weights(method="fair_multi_exit", backbone="vgg11") == (0.3, 0.45, 0.6, 0.75, 0.9)
    assert weights(method="fair_multi_exit_pairwise_eo", backbone="resnet18") == (1.0,) * 5
    assert weights(method="pairwise_eo", backbone="vgg11") == (1.0,)


def test_constraint_problems_name_the_constraint_field(cohort: CohortArrays) -> None:
    rule = {"threshold_rule": "constrained"}
    unknown = problems({**BASE, **rule, "threshold_constraint": {"attribute": "race", "max_fpr": 0.2}}, cohort)
    assert [p["field"] for p in unknown] == ["threshold_constraint.attribute"]
    too_small = problems({**BASE, **rule, "threshold_constraint": {"max_fpr": 0.2, "min_group_count": 500}}, cohort)
    assert [p["field"] for p in too_small] == ["threshold_constraint.min_group_count"]
    config = validate_training_config(
        {**BASE, **rule, "threshold_constraint": {"attribute": "age_group", "fpr_band": 0.1, "min_group_count": 3}},
        cohort,
    )
    assert config.threshold_group_attributes == ["age_group"]
