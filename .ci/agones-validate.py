#!/usr/bin/env python3
"""Validates the Agones manifests offline (no Kubernetes API server, no network).

    agones-validate.py [--kubernetes-version X.Y] [--self-test] FILE_OR_DIR...

Every document of every YAML file given (a directory: its *.yaml files) is checked:
- Kubernetes' own kinds (ConfigMap, Secret, Service...) against Kubernetes' JSON Schemas, strict
  (unknown fields are errors), as bundled with the `kubernetes-validate` package;
- Agones' GameServer, Fleet and FleetAutoscaler against deploy/agones/schemas/ (written from
  Agones 1.61's CRDs; their Pod templates against Kubernetes' strict PodTemplateSpec);
- rules across fields that a schema cannot state (Agones' webhook: min <= max replicas, a
  Counter's count within its capacity; a FleetAutoscaler's Fleet exists);
- throng's own conventions for a GameServer (docs/AGONES.md): `--agones true` in the game
  server container's args, health checking on with a period of at least 2 s (throng pings
  once a second), a `players` Counter, and a zone Fleet (`--zone`) that never runs two servers
  for one zone (replicas <= 1, strategy Recreate).
A document of any other kind is an error: nothing goes unchecked.

--self-test also breaks the manifests on purpose, one way at a time, and fails unless each
broken version is rejected with the expected message.

Exit status: 0 if everything is valid (and, with --self-test, every breakage was caught).
"""

import argparse
import copy
import json
import pathlib
import sys

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils as kv_utils
import referencing
import yaml

SCHEMAS = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "agones" / "schemas"
AGONES_KINDS = {
    ("agones.dev/v1", "GameServer"): "gameserver.json",
    ("agones.dev/v1", "Fleet"): "fleet.json",
    ("autoscaling.agones.dev/v1", "FleetAutoscaler"): "fleetautoscaler.json",
}
K8S_DEFINITIONS_ID = "https://kubernetes.io/api/_definitions.json"


def schema_version(desired):
    """The newest Kubernetes schema version bundled that is not newer than `desired`."""
    wanted = kv_utils.major_minor(desired)
    versions = [
        v
        for v in kv_utils.all_versions()
        if tuple(map(int, kv_utils.major_minor(v).split("."))) <= tuple(map(int, wanted.split(".")))
    ]
    if not versions:
        sys.exit(f"kubernetes-validate bundles no schemas for Kubernetes {desired} or older")
    return versions[-1]


class Validator:
    def __init__(self, kubernetes_version):
        self.kubernetes_version = kubernetes_version
        version = schema_version(kubernetes_version)
        definitions = kv_utils.schema_contents(
            f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version
        )
        registry = referencing.Registry().with_resource(
            K8S_DEFINITIONS_ID, referencing.Resource.from_contents(definitions)
        )
        self.agones = {}
        for key, file in AGONES_KINDS.items():
            schema = json.loads((SCHEMAS / file).read_text())
            jsonschema.Draft202012Validator.check_schema(schema)
            self.agones[key] = jsonschema.Draft202012Validator(schema, registry=registry)

    def errors(self, documents):
        """Every problem of `documents` (pairs of file name and parsed document)."""
        problems = []
        fleets = {
            doc["metadata"].get("name")
            for _, doc in documents
            if isinstance(doc, dict) and doc.get("kind") == "Fleet" and isinstance(doc.get("metadata"), dict)
        }
        for file, doc in documents:
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                problems.append(f"{file}: not a Kubernetes object (no apiVersion/kind)")
                continue
            name = (doc.get("metadata") or {}).get("name", "?")
            where = f"{file}: {doc['kind']}/{name}"
            key = (doc["apiVersion"], doc["kind"])
            if key in self.agones:
                for error in sorted(self.agones[key].iter_errors(doc), key=lambda e: list(e.absolute_path)):
                    path = ".".join(str(p) for p in error.absolute_path) or "(top)"
                    problems.append(f"{where}: {path}: {error.message}")
                if not problems or not problems[-1].startswith(where):
                    problems += [f"{where}: {p}" for p in semantic_problems(doc, fleets)]
            else:
                try:
                    kubernetes_validate.validate(doc, self.kubernetes_version, strict=True)
                except kubernetes_validate.ValidationError as error:
                    path = ".".join(str(p) for p in error.path) or "(top)"
                    problems.append(f"{where}: {path}: {error.message}")
                except kubernetes_validate.SchemaNotFoundError as error:
                    problems.append(f"{where}: {error.message}")
        return problems


def gameserver_specs(doc):
    """The GameServer specs in an Agones document, with where they are."""
    if doc["kind"] == "GameServer":
        yield "spec", doc["spec"]
    elif doc["kind"] == "Fleet":
        yield "spec.template.spec", doc["spec"]["template"]["spec"]


def game_container(spec):
    containers = spec["template"]["spec"]["containers"]
    wanted = spec.get("container")
    for container in containers:
        if wanted is None or container.get("name") == wanted:
            return container
    return None


def flag(args, name):
    """The value after `name` in an argument list, if there."""
    for i, arg in enumerate(args[:-1]):
        if arg == name:
            return args[i + 1]
    return None


def semantic_problems(doc, fleets):
    """Rules across fields, and throng's conventions (see the module doc)."""
    problems = []
    for at, spec in gameserver_specs(doc):
        for key, counter in (spec.get("counters") or {}).items():
            if counter.get("count", 0) > counter.get("capacity", 1000):
                problems.append(f"{at}.counters.{key}: count is above capacity")
        health = spec.get("health") or {}
        if health.get("disabled", False):
            problems.append(f"{at}.health: disabled, but throng's pings are its liveness check")
        elif health.get("periodSeconds", 5) < 2:
            problems.append(f"{at}.health.periodSeconds: below 2 s, throng pings once a second")
        if "players" not in (spec.get("counters") or {}):
            problems.append(f"{at}.counters: no `players` Counter (throng reports its player count there)")
        container = game_container(spec)
        if container is None:
            problems.append(f"{at}.container: names no container of the Pod template")
            continue
        args = [str(a) for a in container.get("args", [])]
        if flag(args, "--agones") != "true":
            problems.append(f"{at}: the game server container's args lack `--agones true`")
        if doc["kind"] == "Fleet" and flag(args, "--zone") is not None:
            if doc["spec"].get("replicas", 1) > 1:
                problems.append("spec.replicas: a zone Fleet runs one server per zone")
            if (doc["spec"].get("strategy") or {}).get("type", "RollingUpdate") != "Recreate":
                problems.append("spec.strategy.type: a zone Fleet must Recreate (never two servers of one zone)")
    if doc["kind"] == "FleetAutoscaler":
        spec = doc["spec"]
        if spec["fleetName"] not in fleets:
            problems.append(f"spec.fleetName: no Fleet {spec['fleetName']!r} in these manifests")
        buffer = spec["policy"].get("buffer") or {}
        low, high = buffer.get("minReplicas", 0), buffer.get("maxReplicas")
        if high is not None and low > high:
            problems.append("spec.policy.buffer: minReplicas is above maxReplicas")
        size = buffer.get("bufferSize")
        if isinstance(size, int) and high is not None and size > high:
            problems.append("spec.policy.buffer: bufferSize is above maxReplicas")
    return problems


def load(paths):
    documents = []
    for path in paths:
        path = pathlib.Path(path)
        files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        if not files:
            sys.exit(f"no manifests in {path}")
        for file in files:
            with open(file) as f:
                documents += [(file.name, doc) for doc in yaml.safe_load_all(f) if doc is not None]
    return documents


def first(documents, kind, name_part=""):
    for i, (_, doc) in enumerate(documents):
        if doc.get("kind") == kind and name_part in doc["metadata"]["name"]:
            return i
    raise SystemExit(f"self-test: the manifests have no {kind} named *{name_part}*")


def breakages(documents):
    """(what, expected message part, broken copy of `documents`), one breakage each."""

    def broken(kind, mutate, name_part=""):
        docs = copy.deepcopy(documents)
        i = first(docs, kind, name_part)
        mutate(docs[i][1])
        return docs

    def pod(doc):
        spec = doc["spec"]["template"]["spec"] if doc["kind"] == "Fleet" else doc["spec"]
        return spec["template"]["spec"]

    yield ("a Fleet with negative replicas", "is less than the minimum",
           broken("Fleet", lambda d: d["spec"].__setitem__("replicas", -1)))
    yield ("a GameServer port with an unknown protocol", "is not one of",
           broken("GameServer", lambda d: d["spec"]["ports"][0].__setitem__("protocol", "SCTP")))
    yield ("a Static port without its hostPort", "'hostPort' is a required property",
           broken("GameServer", lambda d: d["spec"]["ports"][0].__setitem__("portPolicy", "Static")))
    yield ("a misspelt field in a Fleet's Pod template (Kubernetes' strict PodSpec)", "Additional properties",
           broken("Fleet", lambda d: pod(d)["containers"][0].__setitem__("argz", ["--agones", "true"])))
    yield ("a misspelt GameServer spec field", "Additional properties",
           broken("GameServer", lambda d: d["spec"].__setitem__("healthcheck", {"disabled": False})))
    yield ("a Buffer autoscaler without maxReplicas", "'maxReplicas' is a required property",
           broken("FleetAutoscaler", lambda d: d["spec"]["policy"]["buffer"].pop("maxReplicas")))
    yield ("a Buffer autoscaler with a 0% buffer", "is not valid under any of the given schemas",
           broken("FleetAutoscaler", lambda d: d["spec"]["policy"]["buffer"].__setitem__("bufferSize", "0%")))
    yield ("an autoscaler of a Fleet that does not exist", "no Fleet",
           broken("FleetAutoscaler", lambda d: d["spec"].__setitem__("fleetName", "throng-nowhere")))
    yield ("a Service port that is not a number (core Kubernetes schema)", "is not of type",
           broken("Service", lambda d: d["spec"]["ports"][0].__setitem__("port", "seven thousand")))
    yield ("a ConfigMap with a misspelt field", "Additional properties",
           broken("ConfigMap", lambda d: d.__setitem__("datas", d.pop("data"))))
    yield ("a zone Fleet with a rolling update", "must Recreate",
           broken("Fleet", lambda d: d["spec"]["strategy"].__setitem__("type", "RollingUpdate"), "zone"))
    yield ("a GameServer without health checking", "disabled",
           broken("GameServer", lambda d: d["spec"]["health"].__setitem__("disabled", True)))
    yield ("a Fleet whose server is not told --agones true", "lack `--agones true`",
           broken("Fleet", lambda d: pod(d)["containers"][0]["args"].remove("--agones")))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--kubernetes-version", default="1.34")
    parser.add_argument("--self-test", action="store_true")
    options = parser.parse_args()
    validator = Validator(options.kubernetes_version)
    documents = load(options.paths)
    problems = validator.errors(documents)
    for problem in problems:
        print(f"INVALID {problem}")
    if problems:
        return 1
    kinds = sorted({doc["kind"] for _, doc in documents})
    print(f"valid: {len(documents)} manifests ({', '.join(kinds)}), Kubernetes {options.kubernetes_version}, Agones 1.61")
    if not options.self_test:
        return 0
    missed = 0
    for what, expected, broken_documents in breakages(documents):
        found = validator.errors(broken_documents)
        if any(expected in p for p in found):
            print(f"rejected as it should be: {what}")
        else:
            missed += 1
            print(f"NOT REJECTED: {what} (wanted a problem containing {expected!r}, got {found})")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
