"""Every manifest under deploy/ validates against the real schemas.

KServe objects against KServe's CRDs, Kubernetes objects against the
Kubernetes OpenAPI schemas, both kept under tests/data/deploy (README.md
there says from where and which version). Validation is strict the way
`kubectl apply --validate=strict` is: a field the schema does not know is an
error, not silently pruned. Needs `jsonschema` and `pyyaml`:

    python3 -m pytest -q tests/deploy/test_manifests.py
"""

import copy
import json
import pathlib

import jsonschema
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "deploy"
K8S = DATA / "k8s-v1.37.0"
CORE = {  # (apiVersion, kind) -> schema file
    ("apps/v1", "Deployment"): "deployment-apps-v1.json",
    ("v1", "Service"): "service-v1.json",
    ("v1", "ConfigMap"): "configmap-v1.json",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudget-policy-v1.json",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscaler-autoscaling-v2.json",
}
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def strict(schema):
    """An OpenAPI v3 CRD schema as a JSON schema that refuses unknown fields
    (where the API server would prune them) and knows int-or-string."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (out.get("type") == "object" and "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    if out.get("x-kubernetes-int-or-string"):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def crd_schemas():
    """(apiVersion, kind) -> JSON schema, from the vendored KServe CRDs."""
    out = {}
    for path in sorted((DATA / "kserve").glob("*.json")):
        crd = json.loads(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for v in crd["spec"]["versions"]:
            out[(f"{group}/{v['name']}", kind)] = strict(v["schema"]["openAPIV3Schema"])
    return out


def validator(schema):
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def object_meta():
    s = json.loads((K8S / "deployment-apps-v1.json").read_text())
    return {**s["$defs"][OBJECT_META], "$defs": s["$defs"]}


def errors(doc):
    """Every schema error of one manifest object, as `path: message`."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    crds = crd_schemas()
    if key in CORE:
        checks = [(json.loads((K8S / CORE[key]).read_text()), doc)]
    elif key in crds:
        # The CRD's own schema says only `metadata: object`; the API server
        # checks it as ObjectMeta.
        checks = [(crds[key], doc), (object_meta(), doc.get("metadata", {}))]
    else:
        return [f"no schema for {key}"]
    found = []
    for schema, obj in checks:
        for e in validator(schema).iter_errors(obj):
            found.append(f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}")
    return found


def manifests():
    for path in sorted((ROOT / "deploy").rglob("*.yaml")):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc is not None:
                yield pytest.param(doc, id=f"{path.relative_to(ROOT)}#{i}:{doc.get('kind')}")


@pytest.mark.parametrize("doc", list(manifests()))
def test_manifest_validates(doc):
    assert errors(doc) == []


def test_every_manifest_directory_is_checked():
    ids = [p.id for p in manifests()]
    assert any("deploy/kserve/servingruntime.yaml" in i for i in ids), ids
    assert any("deploy/kserve/inferenceservice.yaml" in i for i in ids), ids


def kserve(name):
    return yaml.safe_load((ROOT / "deploy" / "kserve" / name).read_text())


def test_the_validator_refuses_what_the_api_server_would():
    # Each change below makes a valid manifest invalid; if the check missed
    # any of them, a passing test above would prove nothing.
    runtime = kserve("servingruntime.yaml")
    bad = []
    d = copy.deepcopy(runtime)
    d["spec"]["supportedModelFormats"][0]["priority"] = 0  # minimum 1
    bad.append(d)
    d = copy.deepcopy(runtime)
    d["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/"  # unknown field
    bad.append(d)
    d = copy.deepcopy(runtime)
    d["spec"]["containers"][0]["ports"][0]["containerPort"] = "8080"  # not an integer
    bad.append(d)
    d = copy.deepcopy(runtime)
    d["metadata"]["labels"] = {"a": 1}  # ObjectMeta labels are strings
    bad.append(d)
    d = copy.deepcopy(kserve("inferenceservice.yaml"))
    d["spec"]["predictor"]["model"]["modelFormat"] = "kiln"  # an object, not a string
    bad.append(d)
    for d in bad:
        assert errors(d), d


def test_the_runtime_speaks_kserve():
    spec = kserve("servingruntime.yaml")["spec"]
    formats = {f["name"]: f for f in spec["supportedModelFormats"]}
    assert formats["kiln"]["autoSelect"] and formats["onnx"]["autoSelect"]
    assert formats["onnx"]["priority"] < formats["kiln"]["priority"]
    assert spec["protocolVersions"] == ["v2"]
    (c,) = spec["containers"]
    assert c["name"] == "kserve-container"
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert "--model_name={{.Name}}" in c["args"] and "--model_dir=/mnt/models" in c["args"]
    isvc = kserve("inferenceservice.yaml")
    assert isvc["spec"]["predictor"]["model"]["modelFormat"]["name"] == "kiln"


def k8s(name):
    return yaml.safe_load((ROOT / "deploy" / "k8s" / name).read_text())


def test_the_validator_refuses_bad_core_objects():
    dep = k8s("deployment.yaml")
    bad = []
    d = copy.deepcopy(dep)
    d["spec"]["replicas"] = "3"
    bad.append(d)
    d = copy.deepcopy(dep)
    d["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesystem"] = True  # wrong level
    bad.append(d)
    d = copy.deepcopy(k8s("service.yaml"))
    d["spec"]["ports"][0]["port"] = "http"  # an integer
    bad.append(d)
    d = copy.deepcopy(k8s("hpa.yaml"))
    del d["spec"]["scaleTargetRef"]
    bad.append(d)
    for d in bad:
        assert errors(d), d


def test_the_deployment_is_what_the_cluster_test_runs():
    import tomllib
    config = tomllib.loads(k8s("configmap.yaml")["data"]["kiln.toml"])
    pod = k8s("deployment.yaml")["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    # Deletion: the preStop pause, then kiln's drain, inside the grace period.
    pause = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = config["server"]["shutdown_grace_ms"] / 1000
    assert pause + drain < pod["terminationGracePeriodSeconds"]
    # Non-root, read-only root, no capabilities; /tmp (the compile cache) writable.
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and sc["capabilities"]["drop"] == ["ALL"]
    assert not sc["allowPrivilegeEscalation"]
    assert {"/tmp", "/mnt/models", "/etc/kiln"} <= {m["mountPath"] for m in c["volumeMounts"]}
    assert "--config=/etc/kiln/kiln.toml" in c["args"]
    assert config["server"]["allow_unauthenticated"] is True
    # The Service, PDB and HPA point at these pods and ports.
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8080, "grpc": 8081}
    svc = k8s("service.yaml")["spec"]
    assert {p["targetPort"] for p in svc["ports"]} == set(ports)
    labels = k8s("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    assert svc["selector"] == labels
    assert k8s("pdb.yaml")["spec"]["selector"]["matchLabels"] == labels
    assert k8s("hpa.yaml")["spec"]["scaleTargetRef"]["name"] == k8s("deployment.yaml")["metadata"]["name"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
