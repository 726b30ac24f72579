"""What the console's training form reads from the API document (``POST /v1/jobs``): the method aliases
as the ``method`` field's examples and the registered fairness terms as ``terms``' ``x-term-names``."""

from __future__ import annotations

from app.main import create_app
from app.settings import Settings
from app.training.config import METHOD_ALIASES, TrainingConfig
from app.training.terms import REGISTRY


def test_the_request_schema_names_the_methods_and_the_terms(tmp_path) -> None:
    settings = Settings(
        environment="test",
        database_url=f"sqlite:///{tmp_path / 'unused.db'}",
        data_dir=tmp_path / "data",
        model_dir=tmp_path / "models",
    )
    document = create_app(settings, run_supervisor=False).openapi()
    body = document["components"]["schemas"]["TrainingJobCreate"]["properties"]
    assert body["method"]["examples"] == list(METHOD_ALIASES)
    assert body["terms"]["x-term-names"] == list(REGISTRY)
    for method in body["method"]["examples"]:  # each example stands alone as a config's method
        assert TrainingConfig.model_validate({"method": method, "sensitive_attributes": ["sex"]}).method == method
