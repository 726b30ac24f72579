"""``fairaudit demo``: the whole loop against a running server, as a newcomer would do it by hand.

Synthetic dermatology cohort (planted bias: lower lesion contrast on dark skin) → upload → a small
study (``--folds`` patient-grouped folds, one seed) of an ``erm`` baseline against a
``fair_multi_exit_pairwise_eo`` model, with final models → each method's pooled out-of-fold report
(every image predicted once, by the fold model that never saw it) and the paired verdicts against the
baseline → set the hospital's fairness policy → try to promote the fairer final model to the ``production``
alias, which the deployment gate refuses when the policy does not hold (every failed check printed) →
promote a model that passes, or, when none does, show an admin's recorded override → predict on held-out
images with a ``predictor`` key. Keys are created in the server's database (same settings as
``fairaudit serve``).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx

from app.settings import Settings

SKIN_ATTRIBUTE = "skin_tone"
EPOCHS = 4
TRAINING = {
    "backbone": "small",
    "batch_size": 64,
    "lr": 0.002,
    "seed": 7,
    "patience": None,
    "sensitive_attributes": [SKIN_ATTRIBUTE],
}
SKIN_TYPE_ATTRIBUTE = "skin_type"  # Fitzpatrick I-VI, finer than the skin tone the fair model is trained on
# The hospital's criteria: a small skin-tone PFD even at the upper end of its interval, and no Fitzpatrick
# skin type (of at least 10 negatives or positives) whose false- or true-positive rate at the operating
# threshold is far from the others'. A model trained to be fair on the coarse grouping can still fail the fine one.
POLICY: dict[str, Any] = {
    "attributes": [SKIN_ATTRIBUTE, SKIN_TYPE_ATTRIBUTE],
    "checks": [
        {"check": "limit", "metric": "pfd", "attribute": SKIN_ATTRIBUTE, "max": 0.1, "on": "ci_high"},
        {"check": "group_band", "attribute": SKIN_TYPE_ATTRIBUTE, "metric": "fpr", "max_spread": 0.25, "min_n": 10},
        {"check": "group_band", "attribute": SKIN_TYPE_ATTRIBUTE, "metric": "tpr", "max_spread": 0.25, "min_n": 10},
        {"check": "max_drop", "metric": "auc", "max_drop": 0.05},
    ],
}
OVERRIDE_REASON = "demo walkthrough: no candidate meets the policy; promoted to show prediction provenance only"


def _bar(fraction: float, width: int = 30) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "." * (width - filled) + f"] {100 * fraction:5.1f}%"


def _show(label: str, fraction: float, extra: str = "") -> None:
    sys.stdout.write(f"\r  {label:<34} {_bar(fraction)} {extra:<40}")
    sys.stdout.flush()


def _check(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        raise SystemExit(
            f"\n{response.request.method} {response.request.url} -> {response.status_code}: {response.text}"
        )
    return dict(response.json())


def _keys(settings: Settings) -> tuple[str, str, str]:
    from app.auth.service import create_key, ensure_organisation
    from app.db.engine import make_engine, make_session_factory, transaction

    engine = make_engine(settings.database_url)
    with transaction(make_session_factory(engine)) as session:
        org = ensure_organisation(session, "FairAudit demo hospital")
        _, auditor = create_key(session, org.id, "auditor", "demo auditor")
        _, predictor = create_key(session, org.id, "predictor", "demo PACS")
        _, admin = create_key(session, org.id, "admin", "demo clinical governance")
    engine.dispose()
    return auditor, predictor, admin


def _wait_cohort(client: httpx.Client, cohort_id: str) -> dict[str, Any]:
    while True:
        cohort = _check(client.get(f"/v1/cohorts/{cohort_id}"))
        _show("decoding images", cohort["progress"], cohort["status"])
        if cohort["status"] != "ingesting":
            print()
            if cohort["status"] != "ready":
                raise SystemExit(f"ingestion failed: {cohort['errors']}")
            return cohort
        time.sleep(0.5)


def _policy_value(report: dict[str, Any], attribute: str, metric: str) -> dict[str, Any]:
    policy = next(e for e in report["evaluations"] if e["exit"] == "policy")
    grouping = next(g for g in policy["groupings"] if g["attribute"] == attribute)
    if metric in grouping.get("gaps", {}):
        return dict(grouping["gaps"][metric])
    return dict(grouping["groups"][0]["metrics"][metric])


def _fmt(value: dict[str, Any]) -> str:
    """``value [interval]``, then the across-fold mean ± sd where the report has one."""
    if value.get("value") is None:
        return f"n/a ({value.get('status')})"
    text = f"{value['value']:.3f} [{value['ci_low']:.3f}, {value['ci_high']:.3f}]"
    folds = value.get("folds") or {}
    if folds.get("mean") is not None and folds.get("sd") is not None:
        text += f" {folds['mean']:.3f}±{folds['sd']:.3f}"
    return text


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _mean_compute(report: dict[str, Any]) -> float:
    exits = report.get("exits")
    if not exits:
        return 1.0
    overall = next(g for g in exits["groupings"] if g["kind"] == "overall")
    return float(overall["groups"][0]["mean_compute"]["value"])


def _print_checks(checks: list[dict[str, Any]]) -> None:
    for check in checks:
        numbers = "" if check.get("p_value") is None else f"  p = {check['p_value']:.2g}"
        print(f"     {check['outcome']:<12} {check['check']['check']:<16} {check['message']}{numbers}")


def _promote_through_gate(client: httpx.Client, admin: httpx.Client, order: list[tuple[str, str]]) -> None:
    """Try each (name, model id) in turn; print every refusal; if all are refused, an admin overrides
    the first with a written reason, which the alias history and every prediction then carry."""
    for name, model_id in order:
        response = client.put("/v1/models/aliases/production", json={"model_version_id": model_id})
        if response.status_code == 200:
            print(f"   the gate passes {name} ({model_id}): it is now 'production'")
            return
        if response.status_code != 409:
            _check(response)
        print(f"   the gate refuses {name} ({model_id}) -- 409, every check that did not pass:")
        _print_checks(response.json().get("errors", []))
    name, model_id = order[0]
    print(f"   no candidate meets the policy; an admin overrides for {name} with a written reason:")
    body = {"model_version_id": model_id, "override_reason": OVERRIDE_REASON}
    _check(admin.put("/v1/models/aliases/production", json=body))
    history = _check(client.get("/v1/models/aliases/production/history"))["items"][0]
    print(f"   alias history: {history['from_model_id']} -> {history['to_model_id']}, gate {history['gate']},")
    print(f"   overridden by key {history['api_key_id']}: {history['override_reason']!r}")


def _study_table(client: httpx.Client, study: dict[str, Any], names: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Print each method's pooled out-of-fold AUC, PFD and EOpp1 (interval, then across-fold mean ± sd)
    and the study's verdicts against the baseline; returns the pooled evaluations by name."""
    pooled = {
        names[c["method"]]: _check(client.get(f"/v1/evaluations/{c['evaluation_id']}"))
        for c in study["result"]["configs"]
    }
    print(f"   {'model':<30} {'AUC':<38} {'PFD (' + SKIN_ATTRIBUTE + ')':<38} {'EOpp1':<38} compute")
    for name, evaluation in pooled.items():
        report = evaluation["report"]
        cells = [
            _fmt(_policy_value(report, "overall", "auc")),
            _fmt(_policy_value(report, SKIN_ATTRIBUTE, "pfd")),
            _fmt(_policy_value(report, SKIN_ATTRIBUTE, "eopp1")),
        ]
        print(f"   {name:<30} " + " ".join(f"{c:<38}" for c in cells) + f" {_mean_compute(report):.0%}")
    label_of = {c["label"]: names[c["method"]] for c in study["result"]["configs"]}
    for row in study["result"]["comparison"]["comparisons"]:
        for diff in row["differences"]:
            wanted = diff["metric"] in ("auc", "pfd", "eopp1") and diff["attribute"] in ("overall", SKIN_ATTRIBUTE)
            if wanted and diff["difference"] is not None:
                print(
                    f"   Δ {diff['metric']:<6} ({diff['attribute']}): {diff['difference']:+.3f} "
                    f"[{diff['ci_low']:+.3f}, {diff['ci_high']:+.3f}]  Holm p = {_p(diff['p_holm'])}  {diff['verdict']}"
                )
        verdicts = ", ".join(f"{v['attribute']}: {v['verdict']}" for v in row["verdicts"])
        print(f"   verdicts of {label_of[row['model']]} against {label_of[row['reference']]}: {verdicts}")
    for name, evaluation in pooled.items():
        print(f"   report ({name}): {client.base_url}/v1/evaluations/{evaluation['id']}/report")
    return pooled


def run_demo(
    base_url: str, n: int, image_size: int, settings: Settings, folds: int = 3, epochs: int | None = None
) -> int:
    from app.cohorts.synth.derm import write_derm_archive

    auditor, predictor, admin_key = _keys(settings)
    work = Path(tempfile.mkdtemp(prefix="fairaudit-demo-"))
    print(f"1. Synthetic dermatology cohort: {n} images, {image_size} px (planted bias: fainter lesions on dark skin)")
    archive = work / "derm.zip"
    write_derm_archive(archive, n=n, seed=11, image_size=image_size)
    held_out = work / "held-out.zip"
    write_derm_archive(held_out, n=40, seed=12345, image_size=image_size)

    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {auditor}"}, timeout=120) as client:
        print("2. Upload")
        config = {"name": "demo derm", "preset": "fitzpatrick17k", "image_size": image_size}
        with archive.open("rb") as fh:
            cohort = _check(
                client.post("/v1/cohorts", files={"archive": ("derm.zip", fh)}, data={"config": json.dumps(config)})
            )
        cohort = _wait_cohort(client, cohort["id"])
        print(
            f"   cohort {cohort['id']} ready: {cohort['n_items']} items, "
            f"{len(cohort['summary']['warnings'])} small-group warnings"
        )

        print(f"3. A {folds}-fold study: a baseline against a fair multi-exit model, every image predicted once")
        names = {"erm": "erm (baseline)", "fair_multi_exit_pairwise_eo": "fair_multi_exit_pairwise_eo"}
        body = {
            "cohort_id": cohort["id"],
            "name": "demo: erm vs fair_multi_exit_pairwise_eo",
            "configs": [{"method": method, **TRAINING, "epochs": epochs or EPOCHS} for method in names],
            "folds": folds,
            "final_models": True,  # each method once more on the cohort's own split: the models to promote
        }
        study = _follow(client, body)
        if study["status"] != "succeeded":
            raise SystemExit(f"the study ended {study['status']}: {study['error']}")

        print("4. Out-of-fold comparison (pooled over the folds; 95% patient-clustered intervals, fold mean ± sd)")
        pooled = _study_table(client, study, names)
        finals = {
            names[study["configs"][c["config"]]["method"]]: c["model_version_id"]
            for c in study["children"]
            if c["fold"] is None
        }
        order = list(names.values())
        pfd = {n: _policy_value(pooled[n]["report"], SKIN_ATTRIBUTE, "pfd")["value"] for n in order}
        measured = [n for n in order if pfd[n] is not None]
        if measured:
            fairer = min(measured, key=lambda n: pfd[n])
        else:
            fairer = max(order, key=lambda n: _policy_value(pooled[n]["report"], "overall", "auc")["value"] or 0)
            print("   PFD could not be measured (too few positives per group; use a larger --n):")
            print("   promoting the model with the higher AUC instead")
        print("5. The hospital's fairness policy (admin key), then promotion of a final model through the gate")
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=120) as admin:
            policy = _check(admin.put("/v1/policies", json=POLICY))
            over = " and ".join(POLICY["attributes"])
            print(f"   policy version {policy['version']}: {len(POLICY['checks'])} checks over {over}")
            print(f"   trying the fairer model first ({fairer})")
            candidates = [fairer, *(n for n in order if n != fairer)]
            _promote_through_gate(client, admin, [(n, finals[n]) for n in candidates])

    print("6. Predict on held-out images with a predictor key")
    with zipfile.ZipFile(held_out) as zf:
        images = [name for name in zf.namelist() if name.endswith((".png", ".jpg"))][:4]
        files = [("images", (name, zf.read(name))) for name in images]
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {predictor}"}, timeout=60) as client:
        result = _check(client.post("/v1/models/production/predict", files=files))
    print(
        f"   model {result['model_id']} (sha256 {result['model_sha256'][:12]}…, evaluation {result['evaluation_id']})"
    )
    if result.get("gate_override"):
        print(f"   promoted past a failed gate: {result['gate_override']}")
    for name, p in zip(images, result["predictions"], strict=True):
        print(f"   {Path(name).name:<40} p={p['probability']:.3f} label={p['label']} exit={p['exit_index']}")
    print(f"\nDone. Files in {work}")
    return 0


def run_study(base_url: str, api_key: str, body: dict[str, Any]) -> int:
    """Submit a study (``POST /v1/studies``), follow its event stream to the end, and print each
    config's verdicts against the reference. Exit status 0 when the study succeeded."""
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60) as client:
        return follow_study(client, body)


def _follow(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    """Submit a study and follow its event stream (a progress bar) to its end; returns the study."""
    study = _check(client.post("/v1/studies", json=body))
    print(f"study {study['id']} ({study['name']}): {len(study['children'])} training jobs", flush=True)
    with client.stream("GET", f"/v1/studies/{study['id']}/events", timeout=None) as events:
        for line in events.iter_lines():
            data = json.loads(line[5:]) if line.startswith("data:") else {}
            if "progress" in data:
                _show("study", data["progress"], f"{data['status']} {data['children']}")
    print()
    return _check(client.get(f"/v1/studies/{study['id']}"))


def follow_study(client: httpx.Client, body: dict[str, Any]) -> int:
    """``run_study`` with a client that carries the server and the key."""
    study = _follow(client, body)
    print(f"study {study['id']}: {study['status']}" + (f" ({study['error']})" if study["error"] else ""))
    for config in (study["result"] or {}).get("configs", []):
        missing = f", missing {config['missing']}" if config["missing"] else ""
        print(f"  {config['label']}: pooled evaluation {config['evaluation_id']}{missing}")
    comparison = (study["result"] or {}).get("comparison") or {"comparisons": []}
    for row in comparison["comparisons"]:
        verdicts = ", ".join(f"{v['attribute']}: {v['verdict']}" for v in row["verdicts"])
        print(f"  {row['model']} vs {row['reference']}: {verdicts}")
    return 0 if study["status"] == "succeeded" else 1
