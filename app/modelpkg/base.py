"""The one pydantic configuration every part of ``model.json`` uses."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A part of the manifest: unknown keys are refused (a typo or a newer writer must not pass
    silently), values are immutable once read, and NaN/±inf are refused (JSON has no such numbers;
    an undefined metric is written as ``null``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
