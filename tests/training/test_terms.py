"""The fairness terms: the estimators are right, their gradients do what the terms are for, and the
term interface changes nothing when a term is off."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from training_helpers import small_config, task_cohort, write_cohort

from app.core.errors import InputError
from app.modelpkg.task import Task
from app.training.config import TrainingConfig
from app.training.networks import build_network
from app.training.run import run_training
from app.training.terms import ExitBatch, get_term
from app.training.terms.hsic import Settings as HSICSettings
from app.training.terms.hsic import masked_hsic
from app.training.terms.mfd import Settings as MFDSettings
from app.training.terms.mfd import mmd2
from app.training.validation import validate_training_config


def reference_hsic(x: np.ndarray, s: np.ndarray) -> float:
    """Song et al.'s unbiased HSIC written out with explicit loops over index pairs (O(m²) per sum)."""
    m = len(x)

    def kernel(a: np.ndarray) -> np.ndarray:
        d2 = np.array([[float(((a[i] - a[j]) ** 2).sum()) for j in range(m)] for i in range(m)])
        mean = sum(d2[i, j] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        k = np.exp(-d2 / (2 * mean))
        for i in range(m):
            k[i, i] = 0.0  # the corrected diagonal: the entries themselves are set to 0
        return k

    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    k, ell = kernel(x), kernel(s)
    trace = sum(k[i, j] * ell[j, i] for i in range(m) for j in range(m))
    sums = k.sum() * ell.sum() / ((m - 1) * (m - 2))
    cross = 2 / (m - 2) * sum(k[i, j] * ell[j, q] for i in range(m) for j in range(m) for q in range(m))
    return (trace + sums - cross) / (m * (m - 3))


def hsic_of(features: torch.Tensor, groups: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    batch = ExitBatch(logits=torch.zeros(len(y)), y=y, groups=groups, n_groups=2, kind="binary", features=features)
    return get_term("hsic").loss(HSICSettings(), batch)


def test_hsic_matches_a_direct_reference_implementation() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(12, 5, generator=gen, dtype=torch.float64)
    groups = torch.tensor([0, 1] * 6)
    onehot = F.one_hot(groups, 2).double()
    mask = torch.ones(12, dtype=torch.bool)
    ours = masked_hsic(F.normalize(x, dim=1), onehot, mask)
    assert float(ours) == pytest.approx(reference_hsic(x.numpy(), onehot.numpy()), rel=1e-9, abs=1e-12)
    # a mask is the same as selecting the rows: the class-conditional sums restrict to one class
    part = torch.tensor([True, False, True] * 4)
    restricted = reference_hsic(x[part].numpy(), onehot[part].numpy())
    assert float(masked_hsic(F.normalize(x, dim=1), onehot, part)) == pytest.approx(restricted, rel=1e-9)
    assert float(masked_hsic(F.normalize(x, dim=1), onehot, torch.arange(12) < 3)) == 0.0  # m < 4: nothing


def test_hsic_is_near_zero_for_independent_features_and_positive_for_dependent_ones() -> None:
    gen = torch.Generator().manual_seed(1)
    n = 256
    y, groups = torch.randint(0, 2, (n,), generator=gen), torch.randint(0, 2, (n,), generator=gen)
    independent = torch.randn(n, 16, generator=gen)
    dependent = independent + 2.0 * groups[:, None].float()
    low, high = float(hsic_of(independent, groups, y)), float(hsic_of(dependent, groups, y))
    assert abs(low) < 0.002
    assert high > 0.02 and high > 20 * abs(low)


def test_a_gradient_step_on_hsic_lowers_it() -> None:
    gen = torch.Generator().manual_seed(2)
    n = 128
    y, groups = torch.randint(0, 2, (n,), generator=gen), torch.randint(0, 2, (n,), generator=gen)
    features = torch.randn(n, 8, generator=gen) + 1.5 * groups[:, None].float()
    values = []
    for _ in range(5):
        features.requires_grad_(True)
        value = hsic_of(features, groups, y)
        (grad,) = torch.autograd.grad(value, features)
        values.append(float(value))
        features = (features - 200.0 * grad).detach()
    assert all(b < a for a, b in itertools.pairwise(values))  # every step lowers it
    assert values[-1] < 0.7 * values[0]


def test_mmd_is_zero_for_identical_sets_and_its_gradient_pulls_the_student_to_the_teacher() -> None:
    gen = torch.Generator().manual_seed(3)
    teacher = torch.randn(20, 6, generator=gen)
    everyone = torch.ones(1, 20)
    assert float(mmd2(teacher, teacher.clone(), everyone, everyone, 0.5)) == pytest.approx(0.0, abs=1e-6)

    n = 64
    y, groups = torch.randint(0, 2, (n,), generator=gen), torch.arange(n) % 2
    teacher = F.normalize(torch.randn(n, 6, generator=gen), dim=1)
    student = teacher.clone()
    student[groups == 1] += 0.8  # group 1's features have drifted from the teacher's
    student.requires_grad_(True)
    batch = ExitBatch(
        logits=torch.zeros(n), y=y, groups=groups, n_groups=2, kind="binary", features=student, teacher_features=teacher
    )
    settings = MFDSettings(teacher_model_version_id="mdl_teacher")
    before = get_term("mfd").loss(settings, batch)
    before.backward()
    assert student.grad is not None

    def distance(s: torch.Tensor) -> float:
        return float((F.normalize(s[groups == 1], dim=1) - teacher[groups == 1]).norm(dim=1).mean())

    with torch.no_grad():
        moved = student - 0.5 * student.grad
        after = get_term("mfd").loss(settings, ExitBatch(**{**batch.__dict__, "features": moved}))
    assert float(after) < float(before) and distance(moved) < distance(student.detach())


def test_features_come_with_the_same_logits_forward_gives() -> None:
    for multi_exit, kind in itertools.product((True, False), ("binary", "multiclass")):
        task = Task() if kind == "binary" else Task(kind="multiclass", classes=["a", "b", "c"])
        torch.manual_seed(0)
        net = build_network("small", in_channels=3, image_size=32, multi_exit=multi_exit, task=task).eval()
        x = torch.randn(4, 3, 32, 32)
        logits, features = net.forward_with_features(x)
        assert torch.equal(logits, net(x))
        assert len(features) == net.n_exits and all(f.shape[0] == 4 and f.dim() == 2 for f in features)
    # an IC's features are its first conv after pooling (64 channels × pool²); the final head's the pooled stage
    assert [f.shape[1] for f in features][-1] == net.backbone.stage_channels[-1]


def test_the_method_names_are_aliases_of_multi_exit_and_terms() -> None:
    alias = small_config(method="fair_multi_exit_pairwise_eo", fairness_weight=0.7)
    spelled = small_config(method=None, multi_exit=True, terms=[{"name": "pairwise_eo", "weight": 0.7}])
    assert spelled == alias and spelled.method == "fair_multi_exit_pairwise_eo" and spelled.fairness_weight == 0.7
    hsic = small_config(method=None, multi_exit=True, terms=[{"name": "hsic"}])
    assert hsic.method == "multi_exit+hsic" and hsic.terms[0].weight == 0.5
    for config in (alias, hsic):
        assert TrainingConfig.model_validate(config.model_dump(mode="json")) == config  # stored configs reload
    old = {k: v for k, v in alias.model_dump(mode="json").items() if k not in ("multi_exit", "terms")}
    assert TrainingConfig.model_validate(old) == alias  # configs written before terms existed


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"method": "erm", "terms": [{"name": "hsic"}]}, "does not match multi_exit and terms"),
        ({"terms": [{"name": "fairprune"}]}, "unknown term 'fairprune'"),
        ({"terms": [{"name": "hsic", "weight": -1}]}, "terms.0: weight"),
        ({"terms": [{"name": "mfd"}]}, "teacher_model_version_id: Field required"),
        ({"terms": [{"name": "hsic"}, {"name": "hsic"}]}, "named once"),
        ({"method": "fair_multi_exit_hsic"}, "unknown method"),
    ],
)
def test_bad_terms_are_refused_with_the_field(overrides: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        small_config(**({"method": None} | overrides))


def test_a_term_of_weight_zero_leaves_training_bit_identical(tmp_path: Path) -> None:
    cohort = write_cohort(tmp_path / "cohort", n=160)

    def weights(config: TrainingConfig, name: str) -> dict[str, torch.Tensor]:
        result = run_training(cohort, config, tmp_path / f"work_{name}", tmp_path / "models", name)
        return {"history": [r.val_auc for r in result.history], "path": result.model_path}  # type: ignore[dict-item]

    plain = small_config(method="fair_multi_exit", epochs=1)
    off = small_config(method=None, multi_exit=True, epochs=1, terms=[{"name": "hsic", "weight": 0.0}])
    a, b = weights(plain, "plain"), weights(off, "off")
    assert a["history"] == b["history"]
    assert (a["path"] / "full.onnx").read_bytes() == (b["path"] / "full.onnx").read_bytes()


def test_hsic_and_mfd_are_refused_for_multilabel_tasks() -> None:
    cohort = task_cohort(Task(kind="multilabel", classes=["effusion", "edema"]), images=False)
    config = small_config(method=None, terms=[{"name": "pairwise_eo"}, {"name": "hsic"}], image_size=16)
    with pytest.raises(InputError) as caught:
        validate_training_config(config, cohort)
    assert [e["field"] for e in caught.value.errors] == ["terms.1"]
    assert "multilabel" in caught.value.errors[0]["message"]


def test_mfd_trains_against_a_kept_teacher_and_refuses_another_architecture(tmp_path: Path) -> None:
    cohort = write_cohort(tmp_path / "cohort", n=160)
    models = tmp_path / "models"
    teacher = run_training(
        cohort, small_config(method="fair_multi_exit", epochs=1, keep_weights=True), tmp_path / "t", models, "mdl_t"
    )
    assert "weights.pt" in teacher.manifest.files
    mfd = {"name": "mfd", "teacher_model_version_id": "mdl_t"}
    student = small_config(method=None, multi_exit=True, epochs=1, terms=[mfd])
    result = run_training(cohort, student, tmp_path / "s", models, "mdl_s", teacher_dir=teacher.model_path)
    assert set(result.history[0].losses) == {"bce", "mfd", "total"} and result.history[0].losses["mfd"] > 0
    record = result.manifest.training
    assert record is not None and result.manifest.method == "multi_exit+mfd"
    assert [(t.name, t.weight, t.settings["sigma"]) for t in record.terms] == [("mfd", 0.02, 0.5)]

    single = small_config(method=None, multi_exit=False, epochs=1, terms=[mfd])
    with pytest.raises(InputError) as caught:
        run_training(cohort, single, tmp_path / "x", models, "mdl_x", teacher_dir=teacher.model_path)
    assert caught.value.errors[0]["field"] == "terms.0.teacher_model_version_id"
    assert "do not fit" in caught.value.errors[0]["message"] and not (models / "mdl_x").exists()
    erm = run_training(cohort, small_config(epochs=1), tmp_path / "e", models, "mdl_e")
    with pytest.raises(InputError, match="mfd teacher"):
        run_training(cohort, single, tmp_path / "y", models, "mdl_y", teacher_dir=erm.model_path)


def _largest_gradient_norm(cohort: Path, config: TrainingConfig, work: Path) -> float:
    """Train one epoch and answer the largest total gradient norm any optimizer step saw."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    norms: list[float] = []

    def record(optimizer: torch.optim.Optimizer, *_: object) -> None:
        grads = [
            p.grad.detach().flatten() for group in optimizer.param_groups for p in group["params"] if p.grad is not None
        ]
        norms.append(float(torch.cat(grads).norm()))

    handle = register_optimizer_step_pre_hook(record)
    try:
        run_training(cohort, config, work, work / "models", work.name)
    finally:
        handle.remove()
    return max(norms)


def test_mfd_runs_clip_the_gradient_norm_as_the_reference_and_any_run_may_ask_for_a_clip(tmp_path: Path) -> None:
    assert small_config(method="erm").resolved_grad_clip_norm() is None
    teacher = {"name": "mfd", "teacher_model_version_id": "mdl_t"}
    assert small_config(method=None, multi_exit=True, terms=[teacher]).resolved_grad_clip_norm() == 1.0
    assert small_config(method=None, terms=[teacher], grad_clip_norm=5.0).resolved_grad_clip_norm() == 5.0
    with pytest.raises(ValueError):
        small_config(method="erm", grad_clip_norm=0)

    cohort = write_cohort(tmp_path / "cohort", n=96)
    free = _largest_gradient_norm(cohort, small_config(method="erm", epochs=1, lr=0.05), tmp_path / "free")
    clipped = _largest_gradient_norm(
        cohort, small_config(method="erm", epochs=1, lr=0.05, grad_clip_norm=0.05), tmp_path / "clipped"
    )
    assert free > 0.05, "the unclipped run must see norms above the clip, or this test proves nothing"
    assert clipped <= 0.05 * (1 + 1e-4)
