"""The teacher an ``mfd`` term distils from: an earlier model version's PyTorch weights.

Models are served as ONNX graphs, which cannot be trained against; a run with ``keep_weights`` also
keeps ``weights.pt`` (the network's state dict, listed with its SHA-256 in ``model.json``), and only
such a model can be a teacher. The job service checks the teacher's organisation, cohort and
architecture against the request (``app.training_jobs.service``); here the weights are checked against
their listed hash and must load into a network of the student's architecture.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import torch

from app.core.errors import InputError
from app.modelpkg.errors import ManifestError
from app.modelpkg.folder import read_manifest
from app.modelpkg.manifest import WEIGHTS_FILE
from app.training.backbones import torch_load_state_dict
from app.training.config import TrainingConfig
from app.training.networks import MultiExitNet


def save_weights(net: MultiExitNet, folder: Path) -> None:
    """Keep ``net``'s weights in ``folder`` (CPU tensors) so the model can teach later runs."""
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, folder / WEIGHTS_FILE)


def load_teacher(folder: Path, config: TrainingConfig, student: MultiExitNet) -> MultiExitNet:
    """A copy of ``student``'s architecture holding the teacher's weights from ``folder``, in eval mode
    and frozen; ``InputError`` naming the teacher field when the folder has no usable weights."""
    field = config.teacher_field

    def refuse(message: str) -> InputError:
        return InputError("the mfd teacher cannot be used", [{"field": field, "message": message}])

    try:
        manifest = read_manifest(folder)
    except ManifestError as exc:
        raise refuse(str(exc)) from None
    kind = manifest.architecture.ic_head_kind
    if None not in (kind, student.ic_head) and kind != student.ic_head:  # same shapes: loading cannot tell
        raise refuse(f"the teacher's IC head is {kind}, this run's is {student.ic_head}")
    listed = manifest.files.get(WEIGHTS_FILE)
    if listed is None:
        raise refuse(f"the teacher was trained without keep_weights, so it has no {WEIGHTS_FILE}")
    data = (folder / WEIGHTS_FILE).read_bytes()
    if hashlib.sha256(data).hexdigest() != listed.sha256:
        raise refuse(f"{WEIGHTS_FILE} does not match the hash model.json lists")
    teacher = copy.deepcopy(student)
    try:
        teacher.load_state_dict(torch_load_state_dict(str(folder / WEIGHTS_FILE)), strict=True)
    except (RuntimeError, ValueError) as exc:
        raise refuse(f"the teacher's weights do not fit this run's network: {str(exc)[:300]}") from None
    return teacher.eval().requires_grad_(False)
