"""The HTML report and the model card of multi-class and multi-label audits, over HTTP."""

from __future__ import annotations

from html.parser import HTMLParser

from audit_helpers import post_audit
from class_audit_helpers import CLASSES, FINDINGS, MULTICLASS_CONFIG, MULTILABEL_CONFIG, multiclass_csv, multilabel_csv


class Tags(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: set[str] = set()
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.update(name for name, _ in attrs)


def page_and_card(client, headers, csv_text: str, config: dict) -> tuple[str, dict]:
    created = post_audit(client, headers, csv_text, config)
    assert created.status_code == 201, created.json()
    evaluation_id = created.json()["id"]
    page = client.get(f"/v1/evaluations/{evaluation_id}/report", headers=headers)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    parsed = Tags(page.text)
    assert "script" not in parsed.tags and not parsed.attrs & {"src", "href"}, "self-contained, no scripts"
    card = client.get(f"/v1/evaluations/{evaluation_id}/model-card", headers=headers)
    assert card.status_code == 200, card.json()
    return page.text, card.json()


def test_multiclass_audit_page_and_card(client, keys):
    html, card = page_and_card(client, keys.headers(), multiclass_csv(), MULTICLASS_CONFIG)
    assert html.index('class="verdict"') < html.index("<h2>Groups") < html.index("<h2>Confusion matrices")
    assert html.count('<table class="confusion">') == 3  # overall and the two skin groups
    for name in CLASSES:
        assert f"<h3>{name} " in html
    assert "paper convention" in html and "task</td><td>multiclass, 3 classes" in html
    assert card["fairaudit"]["task"] == {
        "kind": "multiclass",
        "classes": list(CLASSES),
        "decision": {"rule": "argmax", "thresholds": None},
    }
    assert any(
        m["type"] == "eopp1" and m["slice"] == "skin (gap)"
        for m in card["quantitative_analysis"]["performance_metrics"]
    )


def test_multilabel_audit_page_and_card(client, keys):
    html, card = page_and_card(client, keys.headers(), multilabel_csv(), MULTILABEL_CONFIG)
    assert html.index("<h2>Summary</h2>") < html.index("<h2>Finding: ")
    assert [part.split("<")[0] for part in html.split("<h2>Finding: ")[1:]] == list(FINDINGS)
    assert html.count("ROC by group") == 2 * len(FINDINGS)  # overall and skin, per finding
    assert "Youden" in html, "each finding's fitted threshold rule, in words"
    task = card["fairaudit"]["task"]
    assert task["kind"] == "multilabel" and task["classes"] == list(FINDINGS)
    assert task["decision"]["rule"] == "per-finding threshold" and len(task["decision"]["thresholds"]) == 2
    assert {p["finding"] for p in card["fairaudit"]["thresholds"]["operating_point"]} == set(FINDINGS)
    assert card["fairaudit"]["thresholds"]["rule"].startswith("edema: Youden's J")
