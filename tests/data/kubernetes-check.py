"""Reads deploy/kubernetes/meridian.yaml: prints the kinds in order, writes the ConfigMap's
files into a directory, and checks the references between the objects that no schema checks
(selectors, named ports, the ServiceMonitor, a CRD, against the admin Service and the Secret).
    python3 kubernetes-check.py MANIFEST OUT_DIR"""
import sys

import yaml

docs = list(yaml.safe_load_all(open(sys.argv[1])))
print(" ".join(d["kind"] for d in docs))
cm = next(d for d in docs if d["kind"] == "ConfigMap")
for name, text in cm["data"].items():
    with open(sys.argv[2] + "/" + name, "w") as f:
        f.write(text)

by = {d["kind"] + "/" + d["metadata"]["name"]: d for d in docs}


def within(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


dep = by["Deployment/meridian"]
pod = dep["spec"]["template"]
labels = pod["metadata"]["labels"]
assert within(dep["spec"]["selector"]["matchLabels"], labels), "the Deployment selects no pod"
ports = {p["name"] for c in pod["spec"]["containers"] for p in c["ports"]}
services = [d for d in docs if d["kind"] == "Service"]
for s in services:
    assert within(s["spec"]["selector"], labels), s["metadata"]["name"] + " selects no pod"
    for p in s["spec"]["ports"]:
        assert p["targetPort"] in ports, f"{s['metadata']['name']}: no container port {p['targetPort']}"
pdb = by["PodDisruptionBudget/meridian"]
assert within(pdb["spec"]["selector"]["matchLabels"], labels), "the PDB selects no pod"
assert pdb["spec"]["minAvailable"] < dep["spec"]["replicas"], "the PDB would block every drain"

sm = by["ServiceMonitor/meridian"]["spec"]
scraped = [s for s in services if within(sm["selector"]["matchLabels"], s["metadata"]["labels"])]
assert [s["metadata"]["name"] for s in scraped] == ["meridian-admin"], "the ServiceMonitor selects " + str([s["metadata"]["name"] for s in scraped])
secrets = {v["secret"]["secretName"] for v in pod["spec"]["volumes"] if "secret" in v}
for e in sm["endpoints"]:
    assert e["port"] in {p["name"] for p in scraped[0]["spec"]["ports"]}, e
    assert e["path"] == "/metrics", e
    assert e["authorization"]["type"] == "Bearer", e
    assert e["authorization"]["credentials"]["name"] in secrets, "the scrape token is not the pods' Secret"
