"""deploy/ray/, checked by the tools this machine has: no Kubernetes cluster runs here.

Kubernetes' own objects (the web Deployment, its Service, the ConfigMap)
are validated against Kubernetes' OpenAPI schemas by kubernetes-validate.
The RayCluster is read by Ray's own KubeRay autoscaler code, which turns it
into node types and validates them against Ray's autoscaler schema. Then
the pieces must agree: the address, the names, the probes, the resource.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from ..support.models.ray import MODEL_HOST
from ..support.ray_nodes import HEALTH_CHECKS
from ..support.servers import ROOT

kuberay = pytest.importorskip(
    "ray.autoscaler._private.kuberay.autoscaling_config", reason="the RayCluster check needs the [ray] extra"
)

MANIFESTS = ROOT / "deploy" / "ray"


def documents(name: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((MANIFESTS / name).read_text()))


def by_kind() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for path in sorted(MANIFESTS.glob("*.yaml")) for doc in documents(path.name)}


@pytest.mark.parametrize("kind", ["ConfigMap", "Deployment", "Service"])
def test_kubernetes_objects_pass_kubernetes_schemas(kind: str) -> None:
    version = kubernetes_validate.latest_version()
    schema = kubernetes_validate.validate(by_kind()[kind], version, strict=True)  # raises ValidationError
    assert version.startswith(schema), (version, schema)


def test_rays_kuberay_code_reads_the_raycluster_as_a_web_free_head_and_model_nodes() -> None:
    cluster = {**by_kind()["RayCluster"]}
    cluster["metadata"] = {"namespace": "default", **cluster["metadata"]}
    node_types = kuberay._derive_autoscaling_config_from_ray_cr(cluster)["available_node_types"]
    head, models = node_types["headgroup"]["resources"], node_types["model-nodes"]["resources"]
    assert head["CPU"] == 0 and MODEL_HOST not in head, head
    assert models[MODEL_HOST] >= 1 and models["CPU"] >= 1, models


def test_the_head_checks_node_health_as_the_two_node_test_does() -> None:
    """The lost-node timing the README states is the one tests/pool/test_ray_cluster.py shows."""
    (head,) = by_kind()["RayCluster"]["spec"]["headGroupSpec"]["template"]["spec"]["containers"]
    assert {env["name"]: env["value"] for env in head["env"]} == HEALTH_CHECKS


def test_the_web_pods_reach_the_head_and_are_ready_by_readyz() -> None:
    kinds = by_kind()
    config, web, service = kinds["ConfigMap"], kinds["Deployment"], kinds["Service"]
    assert config["data"]["UTILSERVE_RAY_ADDRESS"] == f"{kinds['RayCluster']['metadata']['name']}-head-svc:6379"
    assert config["data"]["UTILSERVE_POOL"] == "ray"
    pod = web["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "--num-cpus=0" in container["args"][0], "a web pod joins with no resources, so no replica lands there"
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    port = config["data"]["UTILSERVE_BIND"].rpartition(":")[2]
    assert [p["containerPort"] for p in container["ports"]] == [int(port)]


def test_every_manifest_is_listed_in_its_readme() -> None:
    readme = (MANIFESTS / "README.md").read_text()
    assert all(path.name in readme for path in MANIFESTS.glob("*.yaml")), readme
