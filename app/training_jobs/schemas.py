"""The body of ``POST /v1/jobs``: the cohort plus the training config, every field typed.

The fields, bounds and descriptions are those of ``app.training.config.TrainingConfig`` (inherited, not
copied), so the OpenAPI document shows them and a value out of bounds is refused with 422 before
anything is looked up. Checks that need the cohort follow in ``app.training.validation``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict

from app.core.fields import ResourceRef
from app.training.config import TrainingConfig


class TrainingJobCreate(TrainingConfig):
    """``cohort_id`` plus a training config. ``pretrained_weights`` names a file in the server's weights
    folder (``<data_dir>/weights``); nothing outside it can be named."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "cohort_id": "coh_derm_2026",
                    "method": "fair_multi_exit_pairwise_eo",
                    "sensitive_attributes": ["skin_tone"],
                    "backbone": "small",
                    "epochs": 10,
                    "batch_size": 64,
                    "lr": 0.001,
                    "seed": 0,
                    "fairness_weight": 1.0,
                }
            ]
        },
    )

    cohort_id: ResourceRef

    def training_config(self) -> dict[str, Any]:
        """The config as the client gave it (JSON types; defaults left to ``TrainingConfig``)."""
        return self.model_dump(mode="json", exclude={"cohort_id"}, exclude_unset=True)
