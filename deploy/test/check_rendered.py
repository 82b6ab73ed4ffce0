#!/usr/bin/env python3
"""Assertions on `helm template` output of the podtask chart.

Usage: helm template ... | check_rendered.py --mode cluster|namespaced [--namespaces a,b] [--release-namespace NS]
           [--replicas N] [--leader-elect true|false] [--service-monitor true|false] [--finalizers true|false]
           [--monitoring true|false]

Exits non-zero, listing every failed assertion, when the rendered manifests break the contract:
RBAC exactly as the operator needs (no wildcard, no Secrets, exact verbs per resource and scope), restricted Pod
Security, replicas, leader election wiring, probes, PDB, Service/ServiceMonitor.
"""
import argparse
import json
import pathlib
import sys

try:
    import yaml
except ImportError:  # pragma: no cover - chart-test.sh installs it
    sys.exit("check_rendered.py needs PyYAML (pip install pyyaml)")

CRD_NAME = "podtasks.podtask.dev"

# (apiGroup, resource) -> verbs, from the rules the code owns (`podtask rbac`, copied into the chart's files/ and
# checked against the code by tests/generated_drift.rs): the whole set the operator may hold in a watched namespace
# (or cluster-wide), and in its own namespace for leader election.
FILES = pathlib.Path(__file__).resolve().parents[1] / "helm" / "podtask" / "files"


def load_rules(name):
    rules = yaml.safe_load((FILES / name).read_text())
    return {(g, r): set(rule["verbs"]) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}


WORK_RULES = load_rules("work-rules.yaml")
FINALIZERS_RULE = {("podtask.dev", "podtasks/finalizers"): {"update"}}
LEASE_RULES = load_rules("lease-rules.yaml")

RBAC_KINDS = {"Role", "ClusterRole"}
BINDING_KINDS = {"RoleBinding", "ClusterRoleBinding"}

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
    return cond


def name_of(doc):
    md = doc.get("metadata", {})
    ns = md.get("namespace")
    return f"{doc['kind']} {ns + '/' if ns else ''}{md.get('name')}"


def flatten(rules):
    """(group, resource) -> (verbs, resourceNames per rule) from a list of PolicyRules."""
    out = {}
    for r in rules:
        for g in r.get("apiGroups", []):
            for res in r.get("resources", []):
                verbs, names = out.setdefault((g, res), (set(), []))
                verbs.update(r.get("verbs", []))
                names.append((tuple(r.get("resourceNames", []) or ()), tuple(r.get("verbs", []))))
    return out


def check_no_wildcards_or_secrets(role):
    for i, r in enumerate(role.get("rules", [])):
        where = f"{name_of(role)} rule {i}"
        for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
            for v in r.get(field, []) or []:
                check("*" not in str(v), f"{where}: wildcard in {field}: {v!r}")
        check(not r.get("nonResourceURLs"), f"{where}: nonResourceURLs granted")
        for res in r.get("resources", []):
            check(not res.startswith("secrets"), f"{where}: grants {res}")
            check(not res.startswith("configmaps"), f"{where}: grants {res}")
        check(set(r.get("verbs", [])) <= {"get", "list", "watch", "create", "update", "patch", "delete"},
              f"{where}: unexpected verbs {r.get('verbs')}")
        check("deletecollection" not in r.get("verbs", []), f"{where}: deletecollection")
        check("escalate" not in r.get("verbs", []) and "bind" not in r.get("verbs", [])
              and "impersonate" not in r.get("verbs", []), f"{where}: privilege verbs")


def verbs_map(rules):
    return {k: v[0] for k, v in flatten(rules).items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["cluster", "namespaced"], required=True)
    ap.add_argument("--namespaces", default="")
    ap.add_argument("--release-namespace", default="podtask-system")
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--leader-elect", default="true")
    ap.add_argument("--service-monitor", default="false")
    ap.add_argument("--finalizers", default="false")
    ap.add_argument("--monitoring", default="false", help="grafanaDashboard and prometheusRule enabled")
    ap.add_argument("--file", default="-")
    a = ap.parse_args()
    leader = a.leader_elect == "true"
    want_sm = a.service_monitor == "true"
    namespaces = [n for n in a.namespaces.split(",") if n]
    rel_ns = a.release_namespace

    text = sys.stdin.read() if a.file == "-" else open(a.file).read()
    docs = [d for d in yaml.safe_load_all(text) if d]
    check(docs, "nothing rendered")
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)

    work = dict(WORK_RULES)
    if a.finalizers == "true":
        work.update(FINALIZERS_RULE)

    # ---------------------------------------------------------------- RBAC
    roles = [d for d in docs if d["kind"] in RBAC_KINDS]
    for role in roles:
        check_no_wildcards_or_secrets(role)
        check(role.get("rules"), f"{name_of(role)}: no rules")
        check("aggregationRule" not in role, f"{name_of(role)}: aggregationRule")

    cluster_roles = by_kind.get("ClusterRole", [])
    ns_roles = by_kind.get("Role", [])

    # No role may touch CRDs: the operator's startup check lists podtasks instead.
    crd_readers = [r for r in cluster_roles
                   if any("customresourcedefinitions" in x.get("resources", []) for x in r["rules"])]
    check(not crd_readers, f"unexpected CRD access in {[name_of(r) for r in crd_readers]}")

    work_cluster_roles = [r for r in cluster_roles if r not in crd_readers]
    # Nothing about leases or CRDs may be cluster-wide; nothing else may sit in a ClusterRole.
    if a.mode == "cluster":
        check(len(work_cluster_roles) == 1, f"cluster mode: expected 1 work ClusterRole, got {len(work_cluster_roles)}")
        for r in work_cluster_roles:
            got = verbs_map(r["rules"])
            check(got == work, f"{name_of(r)}: verbs {fmt(got)} != expected {fmt(work)}")
        work_roles = [r for r in ns_roles if r["metadata"].get("namespace") != rel_ns
                      or not is_lease_role(r)]
        check(not work_roles, f"cluster mode: unexpected Roles {[name_of(r) for r in work_roles]}")
    else:
        check(not work_cluster_roles,
              f"namespaced mode: unexpected ClusterRoles {[name_of(r) for r in work_cluster_roles]}")
        for ns in namespaces:
            rs = [r for r in ns_roles if r["metadata"].get("namespace") == ns and not is_lease_role(r)]
            if check(len(rs) == 1, f"namespaced mode: expected 1 work Role in {ns}, got {len(rs)}"):
                got = verbs_map(rs[0]["rules"])
                check(got == work, f"{name_of(rs[0])}: verbs {fmt(got)} != expected {fmt(work)}")
        stray = [r for r in ns_roles if not is_lease_role(r) and r["metadata"].get("namespace") not in namespaces]
        check(not stray, f"namespaced mode: Roles outside the watched namespaces: {[name_of(r) for r in stray]}")

    lease_roles = [r for r in ns_roles if is_lease_role(r)]
    if leader:
        check(len(lease_roles) == 1, f"expected 1 leader-election Role, got {len(lease_roles)}")
        for r in lease_roles:
            check(r["metadata"].get("namespace") == rel_ns,
                  f"{name_of(r)}: lease Role not in the release namespace {rel_ns}")
            got = verbs_map(r["rules"])
            check(got == LEASE_RULES, f"{name_of(r)}: verbs {fmt(got)} != {fmt(LEASE_RULES)}")
    else:
        check(not lease_roles, "leader election off, but a lease Role is rendered")

    # Every grant of any resource, union over all roles: nothing beyond the expected set.
    allowed = dict(work)
    allowed.update(LEASE_RULES if leader else {})
    union = {}
    for r in roles:
        for k, v in verbs_map(r["rules"]).items():
            union.setdefault(k, set()).update(v)
    check(set(union) == set(allowed), f"resources granted {sorted(union)} != expected {sorted(allowed)}")
    for k, v in union.items():
        check(v == allowed.get(k), f"{k}: verbs {sorted(v)} != expected {sorted(allowed.get(k, []))}")

    # Bindings: each binds a rendered role to the operator's ServiceAccount, and every role is bound.
    sas = by_kind.get("ServiceAccount", [])
    check(len(sas) == 1, f"expected 1 ServiceAccount, got {len(sas)}")
    sa_name = sas[0]["metadata"]["name"] if sas else None
    role_ids = {(r["kind"], r["metadata"].get("namespace"), r["metadata"]["name"]) for r in roles}
    bound = set()
    for b in [d for d in docs if d["kind"] in BINDING_KINDS]:
        ref = b["roleRef"]
        ns = b["metadata"].get("namespace") if ref["kind"] == "Role" else None
        key = (ref["kind"], ns, ref["name"])
        check(key in role_ids, f"{name_of(b)}: roleRef {key} not rendered")
        bound.add(key)
        check(b["subjects"] == [{"kind": "ServiceAccount", "name": sa_name, "namespace": rel_ns}],
              f"{name_of(b)}: subjects {b['subjects']}")
        if b["kind"] == "ClusterRoleBinding":
            check(ref["kind"] == "ClusterRole", f"{name_of(b)}: binds a {ref['kind']}")
    check(bound == role_ids, f"roles without a binding: {sorted(role_ids - bound, key=str)}")

    # ---------------------------------------------------------------- Deployment
    deps = by_kind.get("Deployment", [])
    if check(len(deps) == 1, f"expected 1 Deployment, got {len(deps)}"):
        check_deployment(deps[0], a, namespaces, leader, sa_name, rel_ns)

    # ---------------------------------------------------------------- PDB, Service, ServiceMonitor
    pdbs = by_kind.get("PodDisruptionBudget", [])
    if a.replicas > 1:
        if check(len(pdbs) == 1, f"replicas {a.replicas}: expected a PodDisruptionBudget"):
            check(pdbs[0]["spec"].get("minAvailable") == 1, f"PDB minAvailable {pdbs[0]['spec'].get('minAvailable')}")
            if deps:
                check(pdbs[0]["spec"]["selector"]["matchLabels"] == deps[0]["spec"]["selector"]["matchLabels"],
                      "PDB selector differs from the Deployment's")
    else:
        check(not pdbs, f"replicas {a.replicas}: a PDB with minAvailable would block every drain")

    svcs = by_kind.get("Service", [])
    if check(len(svcs) == 1, f"expected 1 Service, got {len(svcs)}"):
        ports = svcs[0]["spec"]["ports"]
        check([p["name"] for p in ports] == ["http"], f"Service ports {ports}")
        check(ports[0]["targetPort"] == "http", "Service targetPort is not the named port http")
        if deps:
            check(svcs[0]["spec"]["selector"] == deps[0]["spec"]["selector"]["matchLabels"],
                  "Service selector differs from the Deployment's")
    sms = by_kind.get("ServiceMonitor", [])
    if want_sm:
        if check(len(sms) == 1, f"expected 1 ServiceMonitor, got {len(sms)}"):
            sm = sms[0]
            check(sm["apiVersion"] == "monitoring.coreos.com/v1", f"ServiceMonitor apiVersion {sm['apiVersion']}")
            ep = sm["spec"]["endpoints"]
            check(ep[0]["port"] == "http" and ep[0]["path"] == "/metrics", f"ServiceMonitor endpoints {ep}")
            if svcs:
                sel = sm["spec"]["selector"]["matchLabels"]
                check(all(svcs[0]["metadata"]["labels"].get(k) == v for k, v in sel.items()),
                      "ServiceMonitor selector does not match the Service's labels")
            check(sm["spec"]["namespaceSelector"]["matchNames"] == [rel_ns], "ServiceMonitor namespaceSelector")
    else:
        check(not sms, "ServiceMonitor rendered although serviceMonitor.enabled is false")

    # ---------------------------------------------------------------- dashboard and alerts (off by default)
    dashboards = [d for d in by_kind.get("ConfigMap", []) if d["metadata"]["name"].endswith("-dashboard")]
    rules = by_kind.get("PrometheusRule", [])
    if a.monitoring == "true":
        if check(len(dashboards) == 1, f"expected 1 dashboard ConfigMap, got {len(dashboards)}"):
            cm = dashboards[0]
            check(cm["metadata"]["labels"].get("grafana_dashboard") == "1",
                  "dashboard ConfigMap lacks the Grafana sidecar's label grafana_dashboard: \"1\"")
            try:
                panels = json.loads(cm["data"]["podtask.json"])["panels"]
                check(len(panels) >= 8, f"dashboard has {len(panels)} panels")
            except (KeyError, ValueError) as e:
                check(False, f"dashboard ConfigMap does not hold the dashboard JSON: {e}")
        if check(len(rules) == 1, f"expected 1 PrometheusRule, got {len(rules)}"):
            check(rules[0]["apiVersion"] == "monitoring.coreos.com/v1", f"PrometheusRule apiVersion {rules[0]['apiVersion']}")
            exprs = [r["expr"] for g in rules[0]["spec"]["groups"] for r in g["rules"]]
            check(exprs and all(f'namespace="{rel_ns}"' in e for e in exprs),
                  "every alert selects the release namespace's series")
    else:
        check(not dashboards and not rules, "dashboard or PrometheusRule rendered although off")

    # ---------------------------------------------------------------- generic hygiene
    for d in docs:
        md = d.get("metadata", {})
        check(md.get("labels", {}).get("app.kubernetes.io/name") or d["kind"] == "CustomResourceDefinition",
              f"{name_of(d)}: no app.kubernetes.io/name label")
        if d["kind"] not in ("ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Namespace"):
            check(md.get("namespace"), f"{name_of(d)}: namespaced object without metadata.namespace")
        check(len(md.get("name", "")) <= 63, f"{name_of(d)}: name longer than 63 characters")
    unexpected = set(by_kind) - {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                                 "Deployment", "Service", "ServiceMonitor", "PodDisruptionBudget",
                                 "CustomResourceDefinition", "Namespace", "ConfigMap", "PrometheusRule"}
    check(not unexpected, f"unexpected kinds rendered: {sorted(unexpected)}")

    if failures:
        print(f"check_rendered ({a.mode}): {len(failures)} failure(s):")
        for f in failures:
            print("  FAIL:", f)
        sys.exit(1)
    print(f"check_rendered ({a.mode}{' ' + ','.join(namespaces) if namespaces else ''}): "
          f"{len(docs)} objects OK")


def is_lease_role(r):
    return any("leases" in x.get("resources", []) for x in r.get("rules", []))


def fmt(m):
    return {f"{g or 'core'}/{r}": sorted(v) for (g, r), v in sorted(m.items())}


def check_deployment(dep, a, namespaces, leader, sa_name, rel_ns):
    spec = dep["spec"]
    check(spec.get("replicas") == a.replicas, f"Deployment replicas {spec.get('replicas')} != {a.replicas}")
    check(dep["metadata"].get("namespace") == rel_ns, "Deployment not in the release namespace")
    pod = spec["template"]["spec"]
    check(pod.get("serviceAccountName") == sa_name, f"Deployment serviceAccountName {pod.get('serviceAccountName')}")
    check(pod.get("automountServiceAccountToken") is not False, "service account token not mounted")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        check(not pod.get(key), f"pod sets {key}")
    for v in pod.get("volumes", []):
        check("hostPath" not in v, f"pod mounts hostPath {v}")

    psc = pod.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True, "pod securityContext.runAsNonRoot is not true")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "pod seccompProfile is not RuntimeDefault")
    containers = pod.get("containers", []) + pod.get("initContainers", [])
    check(len(pod.get("containers", [])) == 1, "expected exactly one container")
    for c in containers:
        sc = c.get("securityContext", {})
        who = f"container {c['name']}"
        check(sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, f"{who}: runAsNonRoot")
        check(sc.get("runAsUser", psc.get("runAsUser")) == 65532, f"{who}: runAsUser is not 65532")
        check(sc.get("allowPrivilegeEscalation") is False, f"{who}: allowPrivilegeEscalation is not false")
        check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{who}: capabilities.drop is not [ALL]")
        check(not sc.get("capabilities", {}).get("add"), f"{who}: adds capabilities")
        check(not sc.get("privileged"), f"{who}: privileged")
        check(sc.get("readOnlyRootFilesystem") is True, f"{who}: readOnlyRootFilesystem is not true")
        check(sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type") == "RuntimeDefault",
              f"{who}: seccompProfile is not RuntimeDefault")
        for p in c.get("ports", []):
            check("hostPort" not in p, f"{who}: hostPort")

    c = pod["containers"][0]
    check(c["image"].startswith("ghcr.io/podtask/podtask:") or "@sha256:" in c["image"], f"image {c['image']}")
    check(not c.get("command"), "container overrides the image entrypoint (command)")
    args = c.get("args", [])
    check(args[:1] == ["run"], f"args do not start with the run subcommand: {args}")
    check(len(args) == len(set(args)), f"duplicate args: {args}")
    if leader:
        check("--leader-elect" in args, f"--leader-elect missing from args {args}")
        check(any(x.startswith("--lease-name=") for x in args), "--lease-name missing")
        check("--lease-namespace=$(POD_NAMESPACE)" in args, "--lease-namespace not from POD_NAMESPACE")
    else:
        check(not any(x.startswith("--leader-elect") for x in args), "--leader-elect set although disabled")
    ns_args = [x for x in args if x.startswith("--namespaces")]
    if a.mode == "namespaced":
        check(ns_args == [f"--namespaces={','.join(namespaces)}"], f"--namespaces arg {ns_args} for {namespaces}")
    else:
        check(not ns_args, f"cluster mode must not restrict namespaces: {ns_args}")
    for flag in ("--http-addr=", "--log-format=", "--log-level=", "--default-startup-timeout=",
                 "--config-error-grace=", "--min-rate-limit-backoff=", "--concurrency=",
                 "--kube-api-qps=", "--kube-api-burst="):
        check(any(x.startswith(flag) for x in args), f"{flag} missing from args")
    env = {e["name"]: e for e in c.get("env", [])}
    for name, path in (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")):
        check(env.get(name, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == path,
              f"env {name} not from the downward API {path}")
    ports = c.get("ports", [])
    check([p["name"] for p in ports] == ["http"], f"container ports {ports}")
    port = ports[0]["containerPort"] if ports else None
    check(f"--http-addr=0.0.0.0:{port}" in args, f"--http-addr does not match containerPort {port}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        hg = c.get(probe, {}).get("httpGet", {})
        check(hg.get("path") == path and hg.get("port") in ("http", port), f"{probe}: {hg}")
    res = c.get("resources", {})
    for k in ("cpu", "memory"):
        check(k in res.get("requests", {}), f"resources.requests.{k} missing")
    check("memory" in res.get("limits", {}), "resources.limits.memory missing")
    aff = pod.get("affinity", {}).get("podAntiAffinity", {})
    if a.replicas > 1:
        pref = aff.get("preferredDuringSchedulingIgnoredDuringExecution", [])
        check(pref and pref[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname",
              "no preferred pod anti-affinity across nodes")
        if pref:
            check(pref[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"],
                  "anti-affinity selector differs from the Deployment's")
    check(spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items(),
          "pod labels do not match the selector")


if __name__ == "__main__":
    main()
