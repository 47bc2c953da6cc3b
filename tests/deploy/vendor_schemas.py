"""Regenerates the schemas under tests/data/deploy (see its README.md).

    python3 tests/deploy/vendor_schemas.py KSERVE_CHECKOUT

KSERVE_CHECKOUT is a checkout of the kserve repository (its
config/crd/full/ CRDs are read); the Kubernetes schemas come from the
installed `kubernetes-validate` package (pip install kubernetes-validate==1.37.0).
Descriptions are dropped (they are documentation, not constraints), which
makes the files a third of their size; nothing else is changed, except that
the Kubernetes schemas' `$ref`s to `/api/_definitions.json#/$defs/X` become
`#/$defs/X` with only the definitions each kind reaches copied in.
"""

import json
import pathlib
import subprocess
import sys

import kubernetes_validate
import yaml

OUT = pathlib.Path(__file__).resolve().parents[1] / "data" / "deploy"
K8S_VERSION = "1.37.0"
KINDS = {  # file in kubernetes-validate -> kind
    "deployment-apps-v1": "Deployment",
    "service-v1": "Service",
    "configmap-v1": "ConfigMap",
    "poddisruptionbudget-policy-v1": "PodDisruptionBudget",
    "horizontalpodautoscaler-autoscaling-v2": "HorizontalPodAutoscaler",
}
CRDS = ["clusterservingruntimes", "inferenceservices"]


def strip(o):
    if isinstance(o, dict):
        return {k: strip(v) for k, v in o.items() if k != "description"}
    if isinstance(o, list):
        return [strip(v) for v in o]
    return o


def refs(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "$ref":
                yield v
            else:
                yield from refs(v)
    elif isinstance(o, list):
        for v in o:
            yield from refs(v)


def local(o):
    """Rewrites `/api/_definitions.json#/$defs/X` to `#/$defs/X`."""
    if isinstance(o, dict):
        return {k: "#" + v.split("#", 1)[1] if k == "$ref" else local(v) for k, v in o.items()}
    if isinstance(o, list):
        return [local(v) for v in o]
    return o


def write(path, obj):
    path.write_text(json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n")


def main():
    kserve = pathlib.Path(sys.argv[1])
    commit = subprocess.run(["git", "-C", kserve, "rev-parse", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    for crd in CRDS:
        src = kserve / "config" / "crd" / "full" / f"serving.kserve.io_{crd}.yaml"
        if not src.exists():  # a bare mirror: read the file from git
            text = subprocess.run(["git", "-C", kserve, "show", f"HEAD:{src.relative_to(kserve)}"],
                                  check=True, capture_output=True, text=True).stdout
        else:
            text = src.read_text()
        write(OUT / "kserve" / f"serving.kserve.io_{crd}.json", strip(yaml.safe_load(text)))
    base = (pathlib.Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
            / f"v{K8S_VERSION}-local-strict")
    defs = json.loads((base / "_definitions.json").read_text())["$defs"]
    for file, kind in KINDS.items():
        schema = json.loads((base / f"{file}.json").read_text())
        # Also ObjectMeta, which the KServe objects' metadata is checked against.
        todo = list(refs(schema)) + ["#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]
        reached = {}
        while todo:
            name = todo.pop().rsplit("/", 1)[1]
            if name not in reached:
                reached[name] = defs[name]
                todo.extend(refs(defs[name]))
        schema = local(strip(schema))
        schema["$defs"] = local(strip(reached))
        schema.pop("$id", None)
        write(OUT / f"k8s-v{K8S_VERSION}" / f"{file}.json", schema)
        print(kind, len(reached), "definitions")
    print("kserve commit", commit)


if __name__ == "__main__":
    main()
