#!/usr/bin/env bash
# Static checks of the deployment artefacts (make check-deploy; .ci/run and the CI workflow).
# This machine has no container engine: nothing is built or started here, the files are linted
# and validated against their schemas. One line per check; the output of a failed one follows.
#
#   Dockerfile          hadolint, failing on warnings and above
#   YAML                yamllint (.yamllint) on compose, workflows, Chart.yaml, values.yaml
#   compose.yaml        the Compose specification's schema (check-jsonschema vendor.compose-spec)
#   workflows           SchemaStore's GitHub workflow schema (vendor.github-workflows)
#   Helm values         values.schema.json is a valid schema, and values.yaml satisfies it
#   Helm chart          rendered and linted by helm when a helm binary is on PATH (CI on GitHub);
#                       else by helm's library through helm-sdkpy when HELM_SDKPY_PYTHON names a
#                       Python that has it (see docs/deployment.md); else skipped, and said so.
set -euo pipefail
cd "$(dirname "$0")/.."

CHART=deploy/helm/gatehouse
failures=0

tool() {
  if command -v "$1" >/dev/null 2>&1; then
    command -v "$1"
  elif [ -x ".venv/bin/$1" ]; then
    echo ".venv/bin/$1"
  else
    echo "check-deploy: $1 not found (make venv installs it)" >&2
    exit 2
  fi
}

check() {
  local name=$1 output
  shift
  if output=$("$@" 2>&1); then
    echo "ok    $name"
  else
    echo "FAIL  $name"
    printf '%s\n' "$output" | sed 's/^/      /'
    failures=$((failures + 1))
  fi
}

HADOLINT=$(tool hadolint)
YAMLLINT=$(tool yamllint)
CHECK_JSONSCHEMA=$(tool check-jsonschema)
PYTHON=$(tool python)

check "hadolint Dockerfile (failure threshold: warning)" \
  "$HADOLINT" --no-color --failure-threshold warning Dockerfile
check "yamllint compose.yaml, .github/workflows, $CHART/{Chart,values}.yaml" \
  "$YAMLLINT" --strict compose.yaml .github/workflows "$CHART/Chart.yaml" "$CHART/values.yaml"
check "compose.yaml against the Compose specification" \
  "$CHECK_JSONSCHEMA" --builtin-schema vendor.compose-spec compose.yaml
check ".github/workflows/*.yml against the GitHub workflow schema" \
  "$CHECK_JSONSCHEMA" --builtin-schema vendor.github-workflows .github/workflows/*.yml
check "$CHART/values.schema.json is a valid JSON schema" \
  "$CHECK_JSONSCHEMA" --check-metaschema "$CHART/values.schema.json"
check "$CHART/values.yaml against values.schema.json" \
  "$CHECK_JSONSCHEMA" --schemafile "$CHART/values.schema.json" "$CHART/values.yaml"

# Values that switch on every optional template (ingress, fixed replicas, optional Secrets,
# extra settings, an image digest), so the chart's less-travelled branches render too.
ALL_ON=(
  --set ingress.enabled=true --set ingress.className=nginx
  --set autoscaling.enabled=false
  --set secrets.redis.name=gatehouse-redis --set secrets.metricsToken.name=gatehouse-metrics
  --set config.extra.MAIL_SERVER=smtp.example.com
  --set config.otelExporterOtlpEndpoint=http://otel-collector:4318
  --set image.digest=sha256:0000000000000000000000000000000000000000000000000000000000000000
)

helm_render() {
  # Each rendered document must be YAML; --strict turns lint warnings into failures.
  helm lint --strict "$CHART" >/dev/null
  helm lint --strict "$CHART" "${ALL_ON[@]}" >/dev/null
  helm template gatehouse "$CHART" | "$PYTHON" -c 'import sys, yaml; list(yaml.safe_load_all(sys.stdin))'
  helm template gatehouse "$CHART" "${ALL_ON[@]}" \
    | "$PYTHON" -c 'import sys, yaml; list(yaml.safe_load_all(sys.stdin))'
}

# helm-sdkpy (PyPI) wraps helm v4's Go library in a shared object; it lints (which renders every
# template against the values and the schema) but cannot print the rendered manifests.
sdkpy_lint() {
  HOME=${TMPDIR:-/tmp} "$HELM_SDKPY_PYTHON" - "$CHART" <<'PY'
import asyncio, contextlib, io, os, shutil, sys, tempfile

import helm_sdkpy
import yaml

chart = sys.argv[1]
all_on = {
    "ingress": {"enabled": True, "className": "nginx"},
    "autoscaling": {"enabled": False},
    "secrets": {"redis": {"name": "gatehouse-redis"}, "metricsToken": {"name": "gatehouse-metrics"}},
    "config": {"extra": {"MAIL_SERVER": "smtp.example.com"},
               "otelExporterOtlpEndpoint": "http://otel-collector:4318"},
    "image": {"digest": "sha256:" + "0" * 64},
}


def merge(base, extra):
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


failed = False
for label, overrides in (("default values", {}), ("every option on", all_on)):
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "chart")
        shutil.copytree(chart, copy)
        with open(os.path.join(copy, "values.yaml")) as file:
            values = merge(yaml.safe_load(file), overrides)
        with open(os.path.join(copy, "values.yaml"), "w") as file:
            yaml.safe_dump(values, file)
        # In lint mode helm logs a template's `fail` instead of failing: watch the log (fd 2).
        log = tempfile.TemporaryFile()
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            result = asyncio.run(helm_sdkpy.Lint(helm_sdkpy.Configuration()).run(copy))
        finally:
            os.dup2(saved, 2)
        log.seek(0)
        messages = log.read().decode(errors="replace")
        errors = [m["Path"] for m in result.get("Messages") or [] if m["Severity"] >= 2]
        if errors or "funcMap fail" in messages:
            failed = True
            print(f"{label}: lint findings in {errors or 'templates'}\n{messages}")
sys.exit(1 if failed else 0)
PY
}

if command -v helm >/dev/null 2>&1; then
  check "$CHART renders and lints (helm $(helm version --short 2>/dev/null))" helm_render
elif [ -n "${HELM_SDKPY_PYTHON:-}" ]; then
  check "$CHART renders and lints (helm library via helm-sdkpy)" sdkpy_lint
else
  echo "skip  $CHART rendering: no helm binary here (CI on GitHub runs it; see docs/deployment.md)"
fi

if [ "$failures" -ne 0 ]; then
  echo "check-deploy: $failures check(s) failed" >&2
  exit 1
fi
