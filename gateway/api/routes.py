"""The route table and nothing else."""

from starlette.routing import Route

from gateway.api import admin, health, models
from gateway.api.proxy import ProxyEndpoint

routes = [
    Route("/v1/chat/completions", ProxyEndpoint("chat"), methods=["POST"]),
    Route("/v1/embeddings", ProxyEndpoint("embeddings"), methods=["POST"]),
    Route("/v1/models", models.list_models, methods=["GET"]),
    Route("/v1/models/{model:path}", models.get_model, methods=["GET"]),
    Route("/healthz", health.healthz, methods=["GET"]),
    Route("/readyz", health.readyz, methods=["GET"]),
    Route("/metrics", health.metrics, methods=["GET"]),
    Route("/admin/config", admin.config, methods=["GET"]),
    Route("/admin/policies", admin.policies, methods=["GET"]),
    Route("/admin/policies/reload", admin.reload_policies, methods=["POST"]),
    Route("/admin/explain", admin.explain_route, methods=["POST"]),
    Route("/admin/spend", admin.spend, methods=["GET"]),
]
