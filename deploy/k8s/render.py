#!/usr/bin/env python3
"""Renders a kustomization the way `kubectl kustomize` does, for checks on machines without kubectl.

It implements exactly the subset the kustomizations under deploy/k8s use and refuses anything else,
so a kustomization that grows a feature this file does not know fails loudly instead of being
validated wrongly:

  resources          files (one or more YAML documents) and folders with a kustomization.yaml
  namespace          set on every namespaced object
  images             name -> newName / newTag / digest on the containers of pod templates
  patches            `path:` to a strategic-merge patch of a whole object (matched by kind and name)
  configMapGenerator `files` and `literals`, with `disableNameSuffixHash: true`

Usage: render.py [--json] DIR             print the objects, as YAML documents or one JSON list
       render.py --check-kubectl DIR      also run `kubectl kustomize DIR` and fail on any difference

Needs PyYAML (the project's .venv has it through kubernetes-validate).
"""

import copy
import json
import os
import subprocess
import sys

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KNOWN_KEYS = {"apiVersion", "kind", "resources", "namespace", "images", "patches", "configMapGenerator"}
# Kinds that have no namespace; everything else gets the kustomization's `namespace`.
CLUSTER_SCOPED = {
    "Namespace", "PersistentVolume", "StorageClass", "ClusterRole", "ClusterRoleBinding",
    "CustomResourceDefinition", "PriorityClass", "RuntimeClass", "IngressClass", "Node",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
}
# Lists that a strategic-merge patch merges item by item, by this key (as the Kubernetes API's
# patchMergeKey); every other list is replaced whole, as the API does for lists without one.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
}


class RenderError(Exception):
    pass


def load_documents(path):
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def kustomization_file(folder):
    for name in KUSTOMIZATION_FILES:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise RenderError(f"{folder}: no kustomization.yaml")


def render(folder):
    """The objects `kubectl kustomize folder` prints, in the order they were accumulated."""
    path = kustomization_file(folder)
    docs = load_documents(path)
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise RenderError(f"{path}: expected one mapping")
    k = docs[0]
    unknown = set(k) - KNOWN_KEYS
    if unknown:
        raise RenderError(f"{path}: render.py does not implement {sorted(unknown)}; extend it or keep the kustomization simpler")

    objects = []
    for entry in k.get("resources", []):
        if os.path.isabs(entry):
            raise RenderError(f"{path}: resource `{entry}` must be a relative path (kustomize refuses absolute ones)")
        target = os.path.normpath(os.path.join(folder, entry))
        if os.path.isdir(target):
            objects.extend(render(target))
        elif os.path.isfile(target):
            objects.extend(load_documents(target))
        else:
            raise RenderError(f"{path}: resource `{entry}` does not exist")

    for gen in k.get("configMapGenerator", []):
        objects.append(config_map(folder, path, gen))

    for patch in k.get("patches", []):
        apply_patch(objects, folder, path, patch)

    if "namespace" in k:
        for obj in objects:
            if obj.get("kind") not in CLUSTER_SCOPED:
                obj.setdefault("metadata", {})["namespace"] = k["namespace"]

    for image in k.get("images", []):
        set_image(objects, path, image)

    check_unique(objects, path)
    return objects


def config_map(folder, path, gen):
    allowed = {"name", "files", "literals", "options"}
    if set(gen) - allowed:
        raise RenderError(f"{path}: configMapGenerator keys {sorted(set(gen) - allowed)} are not implemented")
    options = gen.get("options", {})
    if set(options) - {"disableNameSuffixHash", "labels", "annotations"}:
        raise RenderError(f"{path}: configMapGenerator options {sorted(options)} are not implemented")
    if options.get("disableNameSuffixHash") is not True:
        # kustomize's name hash is not reimplemented here; a fixed name is what the Job mounts.
        raise RenderError(f"{path}: configMapGenerator `{gen.get('name')}` needs options.disableNameSuffixHash: true")
    data = {}
    for entry in gen.get("files", []):
        key, _, source = entry.partition("=") if "=" in entry else (os.path.basename(entry), "", entry)
        with open(os.path.join(folder, source), encoding="utf-8") as f:
            data[key] = f.read()
    for entry in gen.get("literals", []):
        key, sep, value = entry.partition("=")
        if not sep:
            raise RenderError(f"{path}: literal `{entry}` is not KEY=VALUE")
        data[key] = value
    metadata = {"name": gen["name"]}
    if options.get("labels"):
        metadata["labels"] = dict(options["labels"])
    if options.get("annotations"):
        metadata["annotations"] = dict(options["annotations"])
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def apply_patch(objects, folder, path, patch):
    if set(patch) != {"path"}:
        raise RenderError(f"{path}: only `patches: - path: FILE` (a whole-object strategic-merge patch) is implemented")
    patch_path = os.path.join(folder, patch["path"])
    for doc in load_documents(patch_path):
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
        matches = [o for o in objects if o.get("kind") == kind and o.get("metadata", {}).get("name") == name]
        if len(matches) != 1:
            raise RenderError(f"{patch_path}: patch for {kind}/{name} matches {len(matches)} objects, expected 1")
        merged = strategic_merge(matches[0], doc)
        matches[0].clear()
        matches[0].update(merged)


def strategic_merge(original, patch, field=None):
    if isinstance(original, dict) and isinstance(patch, dict):
        out = copy.deepcopy(original)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = strategic_merge(out[key], value, key)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(original, list) and isinstance(patch, list) and field in merge_key_fields(original, patch):
        key = merge_key(field, original + patch)
        out = [copy.deepcopy(item) for item in original]
        for item in patch:
            same = [i for i, o in enumerate(out) if o.get(key) == item.get(key)]
            if same:
                out[same[0]] = strategic_merge(out[same[0]], item)
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def merge_key_fields(original, patch):
    fields = set(MERGE_KEYS) | {"ports"}
    if all(isinstance(i, dict) for i in original + patch):
        return fields
    return set()


def merge_key(field, items):
    if field == "ports":
        # Container ports merge on containerPort, Service ports on port.
        return "containerPort" if any("containerPort" in i for i in items) else "port"
    return MERGE_KEYS[field]


def pod_specs(obj):
    spec = obj.get("spec", {})
    if obj.get("kind") == "Pod":
        yield spec
    elif obj.get("kind") == "CronJob":
        yield spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})
    elif "template" in spec:
        yield spec["template"].get("spec", {})


def set_image(objects, path, image):
    if set(image) - {"name", "newName", "newTag", "digest"}:
        raise RenderError(f"{path}: images entry {image} has keys render.py does not implement")
    for obj in objects:
        for spec in pod_specs(obj):
            for c in spec.get("initContainers", []) + spec.get("containers", []):
                name, tag = split_image(c["image"])
                if name != image["name"]:
                    continue
                name = image.get("newName", name)
                if "digest" in image:
                    c["image"] = f"{name}@{image['digest']}"
                elif "newTag" in image:
                    c["image"] = f"{name}:{image['newTag']}"
                else:
                    c["image"] = name + tag


def split_image(ref):
    """("registry:5000/repo", ":tag" or "@sha256:..." or "")."""
    if "@" in ref:
        name, digest = ref.split("@", 1)
        return name, "@" + digest
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon:]
    return ref, ""


def check_unique(objects, path):
    seen = set()
    for obj in objects:
        ident = identity(obj)
        if ident in seen:
            raise RenderError(f"{path}: {ident} appears twice")
        seen.add(ident)


def identity(obj):
    md = obj.get("metadata", {})
    return (obj.get("kind"), md.get("namespace", ""), md.get("name"))


def check_kubectl(folder, objects):
    """Differences between these objects and `kubectl kustomize folder`, as messages."""
    out = subprocess.run(["kubectl", "kustomize", folder], capture_output=True, text=True)
    if out.returncode != 0:
        return [f"kubectl kustomize {folder} failed: {out.stderr.strip()}"]
    theirs = {identity(o): o for o in yaml.safe_load_all(out.stdout) if o}
    ours = {identity(o): o for o in objects}
    problems = []
    for ident in sorted(set(theirs) | set(ours), key=str):
        if ident not in ours:
            problems.append(f"{ident}: only kubectl renders it")
        elif ident not in theirs:
            problems.append(f"{ident}: only render.py renders it")
        elif ours[ident] != theirs[ident]:
            problems.append(
                f"{ident} differs:\n--- render.py\n{yaml.safe_dump(ours[ident], sort_keys=True)}"
                f"--- kubectl kustomize\n{yaml.safe_dump(theirs[ident], sort_keys=True)}"
            )
    return problems


def main(argv):
    as_json = "--json" in argv
    compare = "--check-kubectl" in argv
    folders = [a for a in argv if not a.startswith("--")]
    if len(folders) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        objects = render(folders[0])
    except (RenderError, OSError, yaml.YAMLError) as e:
        print(f"render.py: {e}", file=sys.stderr)
        return 1
    if compare:
        problems = check_kubectl(folders[0], objects)
        for p in problems:
            print(f"render.py: {p}", file=sys.stderr)
        if problems:
            return 1
    if as_json:
        json.dump(objects, sys.stdout, indent=1)
        print()
    elif not compare:
        print(yaml.safe_dump_all(objects, sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
