from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from app.core.fields import ResourceRef


class TrainingJobCreate(BaseModel):
    """``cohort_id`` plus the training config (see ``app.training.config.TrainingConfig``): method,
    sensitive_attributes, backbone, image_size, epochs, batch_size, lr, seed, fairness_weight, …"""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "example": {
                "cohort_id": "coh_…",
                "method": "fair_multi_exit_pairwise_eo",
                "sensitive_attributes": ["skin_tone"],
                "backbone": "small",
                "epochs": 10,
                "batch_size": 64,
                "lr": 0.001,
                "seed": 0,
                "fairness_weight": 1.0,
            }
        },
    )

    cohort_id: ResourceRef

    def training_config(self) -> dict[str, Any]:
        return dict(self.model_extra or {})
