"""The route table and nothing else."""

from starlette.routing import Route
from starlette.types import ASGIApp

from gateway.api import admin, health, models
from gateway.api.proxy import ProxyEndpoint

# The proxied endpoints by path, for POST: what nearly every request asks for (``gateway.app`` serves them
# without the router's walk through the table).
PROXIED: dict[str, ASGIApp] = {
    "/v1/chat/completions": ProxyEndpoint("chat"),
    "/v1/embeddings": ProxyEndpoint("embeddings"),
}

routes = [
    *(Route(path, endpoint, methods=["POST"]) for path, endpoint in PROXIED.items()),
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
