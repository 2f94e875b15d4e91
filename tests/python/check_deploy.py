"""Parses every YAML and JSON file under deploy/ and cross-checks them.

usage: check_deploy.py DEPLOY_DIR METRICS.txt
- every YAML (multi-document) and JSON file parses;
- Prometheus rule groups have alert, expr, labels.severity and a summary;
- every revocd_* metric the alerts and the dashboard use is in METRICS.txt,
  a real scrape of revocd's /metrics;
- the ServiceMonitor scrapes a port the Service defines.
"""
import json
import pathlib
import re
import sys

import yaml


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def main():
    root = pathlib.Path(sys.argv[1])
    scraped = set(re.findall(r"^(revocd_[a-z0-9_]+)", open(sys.argv[2]).read(), re.M))
    docs = {}
    for path in sorted(root.rglob("*")):
        if path.suffix in (".yaml", ".yml"):
            text = path.read_text()
            # CloudFormation short forms (!Ref, !Sub, !GetAtt, !If, !Not,
            # !Equals, ...) are tags: read each as the node under it.
            loader = yaml.SafeLoader

            def short_form(l, suffix, node):
                if isinstance(node, yaml.ScalarNode):
                    return l.construct_scalar(node)
                if isinstance(node, yaml.SequenceNode):
                    return l.construct_sequence(node, deep=True)
                return l.construct_mapping(node, deep=True)

            loader.add_multi_constructor("!", short_form)
            docs[path] = [d for d in yaml.load_all(text, Loader=loader) if d is not None]
            print(f"OK parsed {path} ({len(docs[path])} documents)")
        elif path.suffix == ".json":
            docs[path] = [json.loads(path.read_text())]
            print(f"OK parsed {path}")
    used = set()
    rules = root / "prometheus" / "alerts.yaml"
    for group in docs[rules][0]["groups"]:
        for rule in group["rules"]:
            for key in ("alert", "expr"):
                if key not in rule:
                    fail(f"rule without {key}: {rule}")
            if "severity" not in rule.get("labels", {}) or "summary" not in rule.get("annotations", {}):
                fail(f"rule {rule['alert']} lacks severity or summary")
            used |= set(re.findall(r"revocd_[a-z0-9_]+", rule["expr"]))
    dash = docs[root / "grafana" / "revocd-dashboard.json"][0]
    for panel in dash["panels"]:
        for target in panel["targets"]:
            used |= set(re.findall(r"revocd_[a-z0-9_]+", target["expr"]))
    base = {re.sub(r"_(bucket|sum|count)$", "", m) for m in used}
    scraped_base = {re.sub(r"_(bucket|sum|count)$", "", m) for m in scraped}
    missing = sorted(base - scraped_base)
    if missing:
        fail(f"alerts or dashboard use metrics revocd does not export: {missing}")
    print(f"OK {len(base)} metrics used by alerts and dashboard all exported")
    kube = [d for p, ds in docs.items() if "kubernetes" in str(p) for d in ds]
    service_ports = {p["name"] for d in kube if d["kind"] == "Service" for p in d["spec"]["ports"]}
    for d in kube:
        if d["kind"] == "ServiceMonitor":
            for ep in d["spec"]["endpoints"]:
                if ep["port"] not in service_ports:
                    fail(f"ServiceMonitor port {ep['port']} not in Service ports {service_ports}")
    print("OK ServiceMonitor scrapes a Service port")


if __name__ == "__main__":
    main()
