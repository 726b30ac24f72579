"""``fairaudit demo``: the whole loop against a running server, as a newcomer would do it by hand.

Synthetic dermatology cohort (planted bias: lower lesion contrast on dark skin) → upload → train an
``erm`` baseline and a ``fair_multi_exit_pairwise_eo`` model → compare them with paired-bootstrap
intervals → set the hospital's fairness policy → try to promote the fairer one to the ``production``
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
TRAINING = {
    "backbone": "small",
    "epochs": 6,
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


def _wait_jobs(client: httpx.Client, jobs: dict[str, str]) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    print()
    while len(done) < len(jobs):
        lines = []
        for name, job_id in jobs.items():
            job = done.get(name) or _check(client.get(f"/v1/jobs/{job_id}"))
            if job["status"] in ("succeeded", "failed", "cancelled"):
                done[name] = job
            progress = job["progress"] or {}
            fraction = 1.0 if job["status"] == "succeeded" else float(progress.get("fraction") or 0.0)
            auc = progress.get("val_auc")
            extra = f"{job['status']} epoch {progress.get('epoch', 0)}/{progress.get('epochs', '?')}" + (
                f" val AUC {auc:.3f}" if isinstance(auc, float) else ""
            )
            if job["status"] != "running":
                best = (job.get("result") or {}).get("best_epoch")
                extra = job["status"] + (f" (best epoch {best})" if best else "")
            lines.append(f"  {name:<34} {_bar(fraction)} {extra:<40}")
        sys.stdout.write(f"\x1b[{len(lines)}A")  # redraw the bars in place
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        time.sleep(1.0)
    for name, job in done.items():
        if job["status"] != "succeeded":
            raise SystemExit(f"{name} ended {job['status']}: {job['error']}")
    return done


def _policy_value(report: dict[str, Any], attribute: str, metric: str) -> dict[str, Any]:
    policy = next(e for e in report["evaluations"] if e["exit"] == "policy")
    grouping = next(g for g in policy["groupings"] if g["attribute"] == attribute)
    if metric in grouping.get("gaps", {}):
        return dict(grouping["gaps"][metric])
    return dict(grouping["groups"][0]["metrics"][metric])


def _fmt(value: dict[str, Any]) -> str:
    if value.get("value") is None:
        return f"n/a ({value.get('status')})"
    return f"{value['value']:.3f} [{value['ci_low']:.3f}, {value['ci_high']:.3f}]"


def _say_if_not_significant(differences: list[dict[str, Any]]) -> None:
    """The pick is by point estimate; say so when the paired test cannot tell the two PFDs apart."""
    row = next((r for r in differences if r["metric"] == "pfd" and r["attribute"] == SKIN_ATTRIBUTE), None)
    if row is not None and row.get("p_value") is not None and row["p_value"] >= 0.05:
        print(f"   the PFD difference is not significant on this test split (p = {row['p_value']:.3f}):")
        print("   the pick below rests on the point estimates; audit on more data before relying on it")


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


def run_demo(base_url: str, n: int, image_size: int, settings: Settings) -> int:
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

        print("3. Train a baseline and a fair multi-exit model")
        methods = {"erm (baseline)": "erm", "fair_multi_exit_pairwise_eo": "fair_multi_exit_pairwise_eo"}
        jobs = {
            name: _check(client.post("/v1/jobs", json={"cohort_id": cohort["id"], "method": method, **TRAINING}))["id"]
            for name, method in methods.items()
        }
        finished = _wait_jobs(client, jobs)
        evaluations = {
            name: _check(client.get(f"/v1/evaluations/{job['result']['evaluation_id']}"))
            for name, job in finished.items()
        }

        print("4. Comparison on the same test images (95% intervals)")
        print(f"   {'model':<30} {'AUC':<24} {'PFD (' + SKIN_ATTRIBUTE + ')':<24} {'EOpp1':<24} compute")
        for name, evaluation in evaluations.items():
            report = evaluation["report"]
            print(
                f"   {name:<30} {_fmt(_policy_value(report, 'overall', 'auc')):<24} "
                f"{_fmt(_policy_value(report, SKIN_ATTRIBUTE, 'pfd')):<24} "
                f"{_fmt(_policy_value(report, SKIN_ATTRIBUTE, 'eopp1')):<24} {_mean_compute(report):.0%}"
            )
        names = list(evaluations)
        comparison = _check(
            client.post("/v1/compare", json={"evaluation_ids": [evaluations[n]["id"] for n in names], "n_boot": 1000})
        )
        differences = comparison["comparisons"][0]["differences"]
        for row in differences:
            wanted = row["metric"] in ("auc", "pfd", "eopp1") and row["attribute"] in (
                "overall",
                SKIN_ATTRIBUTE,
            )
            if wanted and row["difference"] is not None:
                print(
                    f"   Δ {row['metric']:<6} ({row['attribute']}): {row['difference']:+.3f} "
                    f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]  p = {row['p_value']:.3f}"
                )
        for name, evaluation in evaluations.items():
            print(f"   report ({name}): {base_url}/v1/evaluations/{evaluation['id']}/report")

        pfd = {n: _policy_value(evaluations[n]["report"], SKIN_ATTRIBUTE, "pfd")["value"] for n in names}
        measured = [n for n in names if pfd[n] is not None]
        if measured:
            fairer = min(measured, key=lambda n: pfd[n])
            _say_if_not_significant(differences)
        else:
            fairer = max(names, key=lambda n: _policy_value(evaluations[n]["report"], "overall", "auc")["value"] or 0)
            print("   PFD could not be measured (too few positives per group in the test split; use a larger --n):")
            print("   promoting the model with the higher AUC instead")
        print("5. The hospital's fairness policy (admin key), then promotion through the deployment gate")
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=120) as admin:
            policy = _check(admin.put("/v1/policies", json=POLICY))
            over = " and ".join(POLICY["attributes"])
            print(f"   policy version {policy['version']}: {len(POLICY['checks'])} checks over {over}")
            order = [fairer, *(n for n in names if n != fairer)]
            print(f"   trying the fairer model first ({fairer})")
            _promote_through_gate(client, admin, [(n, finished[n]["result"]["model_version_id"]) for n in order])

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


def follow_study(client: httpx.Client, body: dict[str, Any]) -> int:
    """``run_study`` with a client that carries the server and the key."""
    study = _check(client.post("/v1/studies", json=body))
    print(f"study {study['id']} ({study['name']}): {len(study['children'])} training jobs", flush=True)
    with client.stream("GET", f"/v1/studies/{study['id']}/events", timeout=None) as events:
        for line in events.iter_lines():
            data = json.loads(line[5:]) if line.startswith("data:") else {}
            if "progress" in data:
                _show("study", data["progress"], f"{data['status']} {data['children']}")
    print()
    study = _check(client.get(f"/v1/studies/{study['id']}"))
    print(f"study {study['id']}: {study['status']}" + (f" ({study['error']})" if study["error"] else ""))
    for config in (study["result"] or {}).get("configs", []):
        missing = f", missing {config['missing']}" if config["missing"] else ""
        print(f"  {config['label']}: pooled evaluation {config['evaluation_id']}{missing}")
    comparison = (study["result"] or {}).get("comparison") or {"comparisons": []}
    for row in comparison["comparisons"]:
        verdicts = ", ".join(f"{v['attribute']}: {v['verdict']}" for v in row["verdicts"])
        print(f"  {row['model']} vs {row['reference']}: {verdicts}")
    return 0 if study["status"] == "succeeded" else 1
