"""The Helm chart: lint, render with the default values and with a production-shaped values file (Redis
Cluster over TLS, autoscaling, the Prometheus Operator resources), and check every manifest against the
Kubernetes schemas offline (kubernetes-validate) and the custom resources against the operator's CRDs."""

from __future__ import annotations

import copy
import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploy.tools import (
    CHART,
    CI_VALUES,
    DASHBOARD,
    KUBERNETES_VERSION,
    OLDEST_KUBERNETES,
    ROOT,
    RULES,
    VENV_BIN,
    by_name,
    one,
    render,
    run,
    tool,
)

CRD_SCHEMAS = ROOT / ".venv" / "deploy-crds"
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
VALUES = {"default": (), "cluster-tls-hpa": (CI_VALUES,)}


def gateway_config(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    config = by_name(manifests, "ConfigMap", "gw-llm-gateway")["data"]["gateway.yaml"]
    parsed: dict[str, Any] = yaml.safe_load(config)
    return parsed


def container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    spec = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["gateway"]
    found: dict[str, Any] = spec["containers"][0]
    return found


@pytest.mark.parametrize("values", VALUES.values(), ids=VALUES.keys())
def test_lint_passes(values: tuple[Path, ...]) -> None:
    args = [tool("helm"), "lint", "--strict", str(CHART)]
    for path in values:
        args += ["-f", str(path)]
    assert "0 chart(s) failed" in run(*args)


@pytest.mark.parametrize("version", [KUBERNETES_VERSION, OLDEST_KUBERNETES])
@pytest.mark.parametrize("values", VALUES.values(), ids=VALUES.keys())
def test_every_manifest_is_valid_kubernetes(values: tuple[Path, ...], version: str) -> None:
    manifests = render(*values)
    kinds = sorted(m["kind"] for m in manifests)
    expected = ["ConfigMap", "ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"]
    if values:
        expected += ["ConfigMap", "HorizontalPodAutoscaler", "NetworkPolicy", "PrometheusRule", "ServiceMonitor"]
    assert kinds == sorted(expected)
    for manifest in manifests:
        if manifest["kind"] in OPERATOR_KINDS:
            continue  # not Kubernetes' own: checked against the operator's CRDs below
        kubernetes_validate.validate(manifest, version, strict=True)


def test_the_schema_check_is_strict() -> None:
    """A misspelt field (readOnlyRootFileSystem) is an error, not a silently ignored key."""
    deployment = one(render(), "Deployment")
    broken = copy.deepcopy(deployment)
    context = broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    context["readOnlyRootFileSystem"] = context.pop("readOnlyRootFilesystem")
    kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_prometheus_operator_resources_match_their_crds() -> None:
    if not (CRD_SCHEMAS / ".installed").exists():
        pytest.fail("the CRD schemas are not installed: `make test` runs scripts/ensure-deploy-tools")
    resources = [m for m in render(CI_VALUES) if m["kind"] in OPERATOR_KINDS]
    broken = copy.deepcopy(resources[0])
    broken["metadata"]["name"] = "broken"
    broken["spec"] = {"endpoints": [{"port": 8080}]} if broken["kind"] == "ServiceMonitor" else {"groups": [{}]}
    validator = ROOT / "tests" / "deploy" / "crds" / "validate.mjs"
    result = subprocess.run(
        ["node", str(validator), str(CRD_SCHEMAS)],
        input=json.dumps([*resources, broken]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen.pop(f"{broken['kind']}/broken") != "ok"  # the validator does reject a bad one
    assert seen == {"ServiceMonitor/gw-llm-gateway": "ok", "PrometheusRule/gw-llm-gateway": "ok"}


@pytest.mark.parametrize("values", VALUES.values(), ids=VALUES.keys())
def test_pods_run_unprivileged_on_a_read_only_root(values: tuple[Path, ...]) -> None:
    manifests = render(*values)
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["automountServiceAccountToken"] is False
    context = container(manifests)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m for m in container(manifests)["volumeMounts"]}
    assert "/tmp" in mounts and not mounts["/tmp"].get("readOnly")  # the only writable place
    assert all(m.get("readOnly") for path, m in mounts.items() if path != "/tmp")


@pytest.mark.parametrize(("values", "drain", "grace"), [((), 5, 30), ((CI_VALUES,), 10, 120)], ids=VALUES.keys())
def test_termination_outlasts_the_drain_and_the_stream_grace(values: tuple[Path, ...], drain: int, grace: int) -> None:
    manifests = render(*values)
    server = gateway_config(manifests)["server"]
    assert (server["drain_delay_seconds"], server["shutdown_grace_seconds"]) == (drain, grace)
    assert one(manifests, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > drain + grace
    # The preStop hook starts the gateway's own drain and lasts exactly as long.
    hook = container(manifests)["lifecycle"]["preStop"]["exec"]["command"]
    assert hook[:2] == ["/bin/sh", "-c"] and shlex.split(hook[2].replace(";", " ; ")) == [
        "kill",
        "-TERM",
        "1",
        ";",
        "sleep",
        str(drain),
    ]


def test_probes_use_liveness_and_readiness_endpoints() -> None:
    gateway = container(render())
    assert gateway["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert gateway["resources"]["requests"]["cpu"] and gateway["resources"]["limits"]["memory"]


def test_workers_come_from_the_values() -> None:
    manifests = render(CI_VALUES)
    env = {e["name"]: e for e in container(manifests)["env"]}
    assert env["GATEWAY_WORKERS"]["value"] == "2" and gateway_config(manifests)["server"]["workers"] == 2


def test_policies_are_a_directory_that_edits_reach_without_a_restart() -> None:
    manifests = render(CI_VALUES)
    mount = next(m for m in container(manifests)["volumeMounts"] if m["name"] == "policies")
    assert "subPath" not in mount  # a subPath mount never sees ConfigMap updates
    assert gateway_config(manifests)["policies"]["dir"] == mount["mountPath"]
    assert "platform.yaml" in by_name(manifests, "ConfigMap", "gw-llm-gateway-policies")["data"]

    def annotations(*sets: str) -> dict[str, str]:
        found: dict[str, str] = one(render(CI_VALUES, sets=sets), "Deployment")["spec"]["template"]["metadata"][
            "annotations"
        ]
        return found

    base = annotations()
    assert annotations("policies.files.extra\\.yaml=routes: {}") == base  # a policy edit: no rollout
    assert annotations("config.limits.max_n=4")["checksum/config"] != base["checksum/config"]  # config: rollout
    assert (
        annotations("secret.create=true", "existingSecret=", "secret.env.X=one")["checksum/secret"]
        != base["checksum/secret"]
    )


def test_an_existing_policies_configmap_replaces_the_charts() -> None:
    manifests = render(sets=("policies.existingConfigMap=team-policies",))
    assert [m["metadata"]["name"] for m in manifests if m["kind"] == "ConfigMap"] == ["gw-llm-gateway"]
    volumes = one(manifests, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "policies", "configMap": {"name": "team-policies"}} in volumes


def test_redis_cluster_over_tls() -> None:
    manifests = render(CI_VALUES)
    url = gateway_config(manifests)["state"]["redis_url"]
    assert url == "${REDIS_URL}?cluster=true&ssl_ca_certs=/etc/llm-gateway/redis-tls/ca.crt"
    env = {e["name"]: e for e in container(manifests)["env"]}
    assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "llm-gateway-redis", "key": "url"}
    mounts = {m["name"]: m["mountPath"] for m in container(manifests)["volumeMounts"]}
    assert mounts["redis-tls"] == "/etc/llm-gateway/redis-tls"
    volumes = {v["name"]: v for v in one(manifests, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["redis-tls"]["secret"] == {
        "secretName": "redis-cluster-ca",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }


def test_a_redis_url_with_a_password_goes_to_a_secret_never_the_configmap() -> None:
    manifests = render(sets=("redis.url=rediss://:s3cret-pass@redis.data:6379/0",))
    assert "s3cret" not in yaml.safe_dump(by_name(manifests, "ConfigMap", "gw-llm-gateway"))
    assert gateway_config(manifests)["state"]["redis_url"] == "${REDIS_URL}"
    secret = by_name(manifests, "Secret", "gw-llm-gateway-redis")
    assert secret["stringData"] == {"redis-url": "rediss://:s3cret-pass@redis.data:6379/0"}
    assert gateway_config(render())["state"]["redis_url"] == ""  # no Redis: state in process


def test_provider_keys_come_from_a_secret() -> None:
    manifests = render(sets=("secret.env.OPENAI_API_KEY=sk-test-0123456789",))
    secret = by_name(manifests, "Secret", "gw-llm-gateway")
    assert secret["stringData"] == {"OPENAI_API_KEY": "sk-test-0123456789"}
    assert container(manifests)["envFrom"] == [{"secretRef": {"name": "gw-llm-gateway"}}]
    assert "sk-test" not in yaml.safe_dump([m for m in manifests if m["kind"] != "Secret"])
    existing = render(CI_VALUES)
    assert not [m for m in existing if m["kind"] == "Secret"]
    assert container(existing)["envFrom"] == [{"secretRef": {"name": "llm-gateway-provider-keys"}}]


def test_autoscaling_on_cpu_and_requests_in_flight() -> None:
    manifests = render(CI_VALUES)
    assert "replicas" not in one(manifests, "Deployment")["spec"]  # the HPA owns it
    hpa = one(manifests, "HorizontalPodAutoscaler")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 20)
    assert hpa["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 65}}},
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "gateway_inflight_requests"},
                "target": {"type": "AverageValue", "averageValue": "400"},
            },
        },
    ]
    assert one(render(), "Deployment")["spec"]["replicas"] == 1
    assert one(manifests, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_monitoring_resources_carry_the_shipped_rules_and_dashboard() -> None:
    manifests = render(CI_VALUES)
    assert one(manifests, "PrometheusRule")["spec"] == yaml.safe_load(RULES.read_text())
    dashboard = by_name(manifests, "ConfigMap", "gw-llm-gateway-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["llm-gateway.json"]) == json.loads(DASHBOARD.read_text())
    endpoint = one(manifests, "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    token = {"name": "llm-gateway-metrics", "key": "token"}
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": token}
    env = {e["name"]: e for e in container(manifests)["env"]}
    assert env["GATEWAY_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"] == token
    assert gateway_config(manifests)["observability"]["metrics"] == {"token_env": "GATEWAY_METRICS_TOKEN"}
    assert "observability" not in gateway_config(render())  # no token: /metrics open, as by default


def test_network_policy_opens_only_what_the_gateway_uses() -> None:
    spec = one(render(CI_VALUES), "NetworkPolicy")["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert [p["port"] for p in spec["ingress"][0]["ports"]] == ["http"]
    assert len(spec["ingress"][0]["from"]) == 2
    egress_ports = [[p["port"] for p in rule["ports"]] for rule in spec["egress"]]
    assert egress_ports == [[53, 53], [6379], [443]]
    assert spec["egress"][1]["to"][0]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "redis-cluster"}


@pytest.mark.parametrize(
    ("sets", "complaint"),
    [
        (("replicas=3",), "additional properties 'replicas' not allowed"),
        (("redis.url=redis://h:6379/0?cluster=true",), "/redis/url"),
        (("workers=0",), "/workers"),
        (("config.server.port=9000",), "config.server.port is set by the chart"),
        (("config.state.redis_url=redis://h",), "config.state.redis_url is set by the chart"),
        (
            ("metricsToken.existingSecret=m", "config.observability.metrics.token_file=/t"),
            "both name the /metrics token",
        ),
        (("autoscaling.enabled=true", "autoscaling.minReplicas=5", "autoscaling.maxReplicas=2"), "minReplicas"),
    ],
)
def test_mistakes_in_values_are_refused(sets: tuple[str, ...], complaint: str) -> None:
    args = [tool("helm"), "template", "gw", str(CHART)]
    for item in sets:
        args += ["--set", item]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and complaint in result.stderr, result.stderr


def test_helm_and_kubectl_are_the_fetched_ones() -> None:
    assert run(tool("helm"), "version", "--short").startswith("v4.")
    assert str(VENV_BIN) in tool("kubectl")
    assert "v1.35" in run(tool("kubectl"), "version", "--client")


def test_the_packaged_chart_carries_the_linked_rules_and_dashboard(tmp_path: Path) -> None:
    """files/ links to deploy/; `helm package` stores the contents, so the archive stands alone."""
    run(tool("helm"), "package", str(CHART), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("llm-gateway-*.tgz")
    out = run(tool("helm"), "template", "gw", str(archive), "-f", str(CI_VALUES))
    manifests = [doc for doc in yaml.safe_load_all(out) if doc]
    assert one(manifests, "PrometheusRule")["spec"] == yaml.safe_load(RULES.read_text())
    dashboard = by_name(manifests, "ConfigMap", "gw-llm-gateway-dashboard")["data"]["llm-gateway.json"]
    assert json.loads(dashboard) == json.loads(DASHBOARD.read_text())
