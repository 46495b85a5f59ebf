"""The Kubernetes manifests (issue #16, item 5): `kubectl kustomize` (Debian's
kubernetes-client, or the kubectl the machine has) renders deploy/k8s/base and every overlay,
and a schema check of the rendered objects: each document's apiVersion and kind among those the
manifests may use, with the fields each kind requires; the relay a DaemonSet on the host network
with a narrowed relay port range and probes on /healthz and /readyz; the control plane a
Deployment behind a Service whose selector and target port match it, with probes on /healthz
and /readyz; every ConfigMap and Secret a pod names either rendered or one of the documented
external ones; every key of the embedded meetlite.conf files a documented key (or the -file form
of a secret key) and every -file path inside a mounted Secret; no Secret with data in the tree;
the CloudNativePG Cluster the one the database URL and password file name."""

import configparser
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import TOP_SRCDIR, Tap  # noqa: E402

import yaml  # noqa: E402  (python3-yaml, scripts/deps.sh)

t = Tap()
K8S = os.path.join(TOP_SRCDIR, "deploy", "k8s")
TREES = ["base"] + ["overlays/" + d for d in sorted(os.listdir(os.path.join(K8S, "overlays")))]
# Secrets the cluster provides (deploy/k8s/base/kustomization.yaml says how they are made)
EXTERNAL_SECRETS = {"meetlite", "meetlite-db-app"}
EXTERNAL_SECRET_KEYS = {"meetlite": {"turn-auth-secret", "jwt-secret", "admin-token"},
                        "meetlite-db-app": {"password"}}
# (apiVersion, kind) the manifests may use, with the paths every object of the kind must have
SCHEMA = {
    ("v1", "Namespace"): [],
    ("v1", "ConfigMap"): ["data"],
    ("v1", "Service"): ["spec.selector", "spec.ports"],
    ("apps/v1", "Deployment"): ["spec.selector.matchLabels", "spec.template.metadata.labels",
                                "spec.template.spec.containers"],
    ("apps/v1", "DaemonSet"): ["spec.selector.matchLabels", "spec.template.metadata.labels",
                               "spec.template.spec.containers"],
    ("policy/v1", "PodDisruptionBudget"): ["spec.selector.matchLabels"],
    ("networking.k8s.io/v1", "NetworkPolicy"): ["spec.podSelector"],
    ("postgresql.cnpg.io/v1", "Cluster"): ["spec.instances", "spec.storage.size",
                                           "spec.bootstrap.initdb.database",
                                           "spec.bootstrap.initdb.owner"],
}
NAMESPACED = {"ConfigMap", "Service", "Deployment", "DaemonSet", "PodDisruptionBudget",
              "NetworkPolicy", "Cluster", "Secret"}
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def get(obj, path):
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def documented_keys():
    """section.key of etc/meetlite.conf (the sample documents every key: daemon.py checks)."""
    keys, section = set(), None
    with open(os.path.join(TOP_SRCDIR, "etc", "meetlite.conf")) as f:
        for line in f:
            m = re.match(r"^\[([a-z]+)\]", line)
            if m:
                section = m.group(1)
                continue
            m = re.match(r"^([a-z0-9-]+)\s*=", line)
            if m and section:
                keys.add("%s.%s" % (section, m.group(1)))
    return keys


def ini_keys(text):
    p = configparser.ConfigParser(interpolation=None, comment_prefixes=(";", "#"),
                                  inline_comment_prefixes=None, strict=True)
    p.read_string(text)
    return {("%s.%s" % (s, k)): v for s in p.sections() for k, v in p[s].items()}


def pod_checks(where, obj, configmaps, probe_kind):
    spec = obj["spec"]["template"]["spec"]
    sel = obj["spec"]["selector"]["matchLabels"]
    labels = obj["spec"]["template"]["metadata"]["labels"]
    t.ok(all(labels.get(k) == v for k, v in sel.items()),
         "%s %s: the selector matches the pod template's labels" % (where, obj["kind"]))
    mounts_ok, refs_ok, probes_ok, sec_ok = True, [], True, True
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    secret_dirs = {}
    for c in spec["containers"]:
        if not c.get("image") or not c.get("name"):
            mounts_ok = False
        for m in c.get("volumeMounts", []):
            v = volumes.get(m["name"])
            if v is None:
                mounts_ok = False
            elif "secret" in v:
                secret_dirs[m["mountPath"]] = v["secret"]
        for e in c.get("env", []):
            ref = get(e, "valueFrom.configMapKeyRef")
            if ref:
                cm = configmaps.get(ref["name"])
                refs_ok.append(cm is not None and ref["key"] in cm.get("data", {}))
        probes = []
        for name in ("livenessProbe", "readinessProbe"):
            p = c.get(name) or {}
            if probe_kind == "http":
                probes.append(get(p, "httpGet.path"))
            else:
                cmd = get(p, "exec.command") or []
                probes.append({"health": "/healthz", "ready": "/readyz"}.get(cmd[-1] if cmd else ""))
        probes_ok &= probes == ["/healthz", "/readyz"]
        sc = c.get("securityContext") or {}
        sec_ok &= sc.get("allowPrivilegeEscalation") is False and \
            "ALL" in (get(sc, "capabilities.drop") or [])
    for v in volumes.values():
        if "configMap" in v:
            refs_ok.append(v["configMap"]["name"] in configmaps)
        if "secret" in v:
            name = v["secret"]["secretName"]
            items = {i["key"] for i in v["secret"].get("items", [])}
            refs_ok.append(name in EXTERNAL_SECRETS and items <= EXTERNAL_SECRET_KEYS[name])
    t.ok(mounts_ok, "%s %s: every container has a name and an image, every mount a volume"
         % (where, obj["kind"]))
    t.ok(refs_ok and all(refs_ok), "%s %s: every ConfigMap (and key) it names is rendered, "
         "every Secret one of the documented external ones" % (where, obj["kind"]), refs_ok)
    t.ok(probes_ok, "%s %s: liveness on /healthz, readiness on /readyz (%s)"
         % (where, obj["kind"], probe_kind))
    t.ok(sec_ok, "%s %s: no privilege escalation, capabilities dropped" % (where, obj["kind"]))
    return spec, secret_dirs


def config_checks(where, obj, spec, secret_dirs, configmaps, known):
    cm_vol = [v["configMap"]["name"] for v in spec["volumes"] if "configMap" in v]
    conf = configmaps[cm_vol[0]]["data"]["meetlite.conf"] if cm_vol else ""
    keys = ini_keys(conf)
    # a -file key is the file form of a secret key (turn.auth-secret-file, auth.jwt-secret-file,
    # admin.token-file, database.password-file)
    unknown = [k for k in keys if k not in known and not k.endswith("-file")]
    t.ok(keys and not unknown, "%s %s: every key of its meetlite.conf is documented" %
         (where, obj["kind"]), unknown)
    files = [v for k, v in keys.items() if k.endswith("-file")]
    inside = [any(os.path.dirname(f) == d for d in secret_dirs) for f in files]
    t.ok(files and all(inside), "%s %s: secrets come from files of mounted Secrets (%s)" %
         (where, obj["kind"], ", ".join(sorted(k for k in keys if k.endswith("-file")))),
         list(zip(files, inside)))
    args = " ".join(spec["containers"][0].get("args", []))
    t.ok(not re.search(r"secret=|token=|password=", args),
         "%s %s: no secret on the command line" % (where, obj["kind"]), args)
    return keys


def check_tree(tree, kubectl, known):
    path = os.path.join(K8S, tree)
    r = subprocess.run([kubectl, "kustomize", path], capture_output=True, text=True, timeout=120)
    t.ok(r.returncode == 0 and r.stdout.strip(), "%s: kubectl kustomize renders it" % tree,
         r.stderr[-2000:])
    if r.returncode != 0:
        return
    docs = [d for d in yaml.safe_load_all(r.stdout) if d is not None]
    kinds = sorted("%s/%s" % (d.get("apiVersion"), d.get("kind")) for d in docs)
    t.diag("%s: %s" % (tree, ", ".join(kinds)))
    bad = []
    for d in docs:
        key = (d.get("apiVersion"), d.get("kind"))
        name = get(d, "metadata.name")
        if key not in SCHEMA or not isinstance(name, str) or not NAME_RE.match(name):
            bad.append((key, name, "kind or name"))
            continue
        missing = [p for p in SCHEMA[key] if get(d, p) in (None, "", [], {})]
        if missing:
            bad.append((key, name, missing))
    t.ok(not bad, "%s: every object of a known apiVersion and kind, named, with its required "
         "fields" % tree, bad)
    names = [(d.get("kind"), get(d, "metadata.namespace"), get(d, "metadata.name")) for d in docs]
    t.ok(len(names) == len(set(names)), "%s: no two objects share kind, namespace and name" % tree)
    if tree != "base":
        ns = {get(d, "metadata.namespace") for d in docs if d.get("kind") in NAMESPACED}
        t.ok(len(ns) == 1 and None not in ns, "%s: every namespaced object in one namespace" % tree,
             ns)
    t.ok(not [d for d in docs if d.get("kind") == "Secret" and (d.get("data") or
                                                                d.get("stringData"))],
         "%s: no Secret with data in the tree (secrets are the cluster's)" % tree)
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    configmaps = {get(d, "metadata.name"): d for d in by_kind.get("ConfigMap", [])}

    # the relay: a DaemonSet on the host network, a narrowed relay port range, registered
    ds = by_kind.get("DaemonSet", [])
    t.eq(len(ds), 1, "%s: one DaemonSet (the relays)" % tree)
    spec, secret_dirs = pod_checks(tree, ds[0], configmaps, "http")
    t.ok(spec.get("hostNetwork") is True and spec.get("dnsPolicy") == "ClusterFirstWithHostNet",
         "%s: the relay runs on the host network (cluster DNS kept)" % tree)
    probes_host = {get(c, p + ".httpGet.host") for c in spec["containers"]
                   for p in ("livenessProbe", "readinessProbe")}
    t.eq(probes_host, {"127.0.0.1"}, "%s: its probes reach the admin API on the node's loopback"
         % tree)
    relay = config_checks(tree, ds[0], spec, secret_dirs, configmaps, known)
    m = re.match(r"^(\d+)-(\d+)$", relay.get("turn.relay-ports", ""))
    n = int(m.group(2)) - int(m.group(1)) + 1 if m else 0
    t.ok(0 < n <= 4096 and int(m.group(1)) >= 1024,
         "%s: a narrowed relay port range (%s: %d ports)" % (tree, relay.get("turn.relay-ports"), n))
    t.ok(relay.get("fleet.register") == "yes",
         "%s: each relay registers in the fleet's registry" % tree)
    args = " ".join(spec["containers"][0].get("args", []))
    t.ok("fleet.node-name=$(NODE_NAME)" in args and "turn.external-address=$(HOST_IP)" in args,
         "%s: under its node's name, with its node's address" % tree, args)

    # the control plane: a Deployment behind a Service
    dep = by_kind.get("Deployment", [])
    t.eq(len(dep), 1, "%s: one Deployment (the control plane)" % tree)
    spec, secret_dirs = pod_checks(tree, dep[0], configmaps, "exec")
    control = config_checks(tree, dep[0], spec, secret_dirs, configmaps, known)
    t.ok(control.get("fleet.placement") == "meeting" and control.get("control.listen"),
         "%s: the control plane places by meeting" % tree)
    svc = by_kind.get("Service", [])
    pod_labels = dep[0]["spec"]["template"]["metadata"]["labels"]
    ports = {p.get("name") for c in spec["containers"] for p in c.get("ports", [])}
    t.ok(len(svc) == 1 and all(pod_labels.get(k) == v for k, v in svc[0]["spec"]["selector"].items())
         and all(p["targetPort"] in ports for p in svc[0]["spec"]["ports"]),
         "%s: the Service selects the control pods and targets their port" % tree)
    listen_port = control.get("control.listen", ":").rsplit(":", 1)[1]
    t.ok(any(str(p.get("containerPort")) == listen_port for c in spec["containers"]
             for p in c.get("ports", [])), "%s: the container port is control.listen's" % tree)

    # PostgreSQL: the operator's Cluster is the one the database URL names
    clusters = by_kind.get("Cluster", [])
    if clusters:
        c = clusters[0]
        host = re.search(r"host=(\S+)", control.get("database.url", ""))
        t.ok(host and host.group(1) == get(c, "metadata.name") + "-rw" and
             "meetlite-db-app" == get(c, "metadata.name") + "-app" and
             get(c, "spec.bootstrap.initdb.database") == "meetlite" and
             isinstance(get(c, "spec.instances"), int),
             "%s: the CloudNativePG Cluster is the database the pods name (Service -rw, Secret "
             "-app)" % tree, host and host.group(1))


try:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        t.bail("no kubectl: install Debian's kubernetes-client (scripts/deps.sh)")
    v = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True)
    t.diag("kubectl: %s" % (v.stdout.strip().splitlines() or ["?"])[0])
    known = documented_keys()
    t.ok(len(known) > 50, "etc/meetlite.conf lists the configuration keys (%d)" % len(known))
    t.ok(len(TREES) >= 2, "a base and at least one overlay", TREES)
    for tree in TREES:
        check_tree(tree, kubectl, known)
except Exception as e:  # noqa: BLE001
    import traceback
    t.bail("%s\n%s" % (e, traceback.format_exc()))
t.done()
