// Checks prometheus-operator custom resources (ServiceMonitor, PrometheusRule) against the operator's CRD
// schemas, which kubernetes-validate does not know. Usage: node validate.mjs DIR < objects.json, where DIR
// holds this package's node_modules (scripts/ensure-deploy-tools installs them under .venv). Prints one
// JSON object: {"<kind>/<name>": "ok" | "<errors>"}.
import { createRequire } from "node:module";
import { join } from "node:path";
import { readFileSync } from "node:fs";

const require = createRequire(join(process.argv[2], "package.json"));
const kinds = ["ServiceMonitor", "PrometheusRule"];
const models = Object.fromEntries(
  kinds.map((k) => [k, require(`@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${k}`)[k]]),
);
const objects = JSON.parse(readFileSync(0, "utf8"));
const seen = {};
for (const obj of objects) {
  const Model = models[obj.kind];
  const name = `${obj.kind}/${obj.metadata?.name}`;
  if (!Model || obj.apiVersion !== "monitoring.coreos.com/v1") {
    seen[name] = `not a prometheus-operator kind: ${obj.apiVersion} ${obj.kind}`;
    continue;
  }
  try {
    new Model(obj).validate();
    seen[name] = "ok";
  } catch (e) {
    seen[name] = String(e.message);
  }
}
console.log(JSON.stringify(seen));
