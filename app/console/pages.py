"""The console's pages: one row each, read by the router (routes) and the base template (navigation).

A page names the permission its content needs. The shell is served to anyone (it holds no data);
the page's script shows a refusal instead of the content when the signed-in key's role lacks the
permission, and the navigation hides what the role cannot open. The API still checks every call.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.auth.roles import Permission


@dataclass(frozen=True)
class Page:
    name: str  # its script: ``static/js/pages/<name>.js`` (every page shares the shell ``console/page.html``)
    path: str  # under /console; ``{param}`` segments are handed to the script
    title: str
    permission: Permission | None  # None: any signed-in key (or, for sign-in, nobody)
    nav: str | None = None  # the navigation's label; None: reached from another page


PAGES: tuple[Page, ...] = (
    Page("signin", "/signin", "Sign in", None),
    Page("cohorts", "", "Cohorts", Permission.read, nav="Cohorts"),
    Page("cohort", "/cohorts/{cohort_id}", "Cohort", Permission.read),
    Page("train", "/train", "Start training", Permission.write, nav="Train"),
    Page("jobs", "/jobs", "Jobs", Permission.read, nav="Jobs"),
    Page("job", "/jobs/{job_id}", "Job", Permission.read),
    Page("evaluations", "/evaluations", "Evaluations", Permission.read, nav="Evaluations"),
    Page("evaluation", "/evaluations/{evaluation_id}", "Evaluation", Permission.read),
    Page("compare", "/compare", "Compare evaluations", Permission.read, nav="Compare"),
    Page("models", "/models", "Models", Permission.read, nav="Models"),
    Page("model", "/models/{model_ref}", "Model version", Permission.read),
    Page("predict", "/predict", "Try a model", Permission.predict, nav="Try it"),
    Page("monitoring", "/monitoring", "Monitoring", Permission.read, nav="Monitoring"),
    Page("keys", "/keys", "API keys", Permission.manage_keys, nav="Keys"),
)
