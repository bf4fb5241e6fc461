"""The deployment artefacts keep their promises: Dockerfile, compose.yaml, the Helm chart, CI.

No container engine or helm binary is needed: the files are parsed. The Helm templates are
rendered by a deliberately small stand-in for Go templates (``render_template``): every branch
is kept, ``include`` expands the chart's own helpers, ``.Values`` paths take values.yaml's
values and anything else becomes a placeholder. That is enough to read the manifests' structure;
`scripts/check-deploy.sh` lints the real rendering where helm is available.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "gatehouse"
PLACEHOLDER = "PLACEHOLDER"
APP_UID = 10001
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what the container must bind, asserted
TMP = "/tmp"  # noqa: S108 - the writable mounts asserted below
METRICS_DIR = f"{TMP}/gatehouse-metrics"


# --- readers ----------------------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions (continuations joined, comments dropped), per stage."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    stages: list[list[tuple[str, str]]] = []
    for instruction in instructions:
        if instruction[0] == "FROM":
            stages.append([])
        if stages:  # the global ARGs before the first FROM belong to no stage
            stages[-1].append(instruction)
    return stages


def dockerfile_instructions_text() -> str:
    """Every instruction of every stage, comments left out."""
    return "\n".join(f"{kw} {args}" for stage in dockerfile_stages() for kw, args in stage)


def final_stage() -> list[tuple[str, str]]:
    return dockerfile_stages()[-1]


def args_of(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [args for instruction, args in stage if instruction == keyword]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in args_of(stage, "ENV"):
        env.update(dict(re.findall(r"([A-Z_][A-Z0-9_]*)=(\S+)", args)))
    return env


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def services() -> dict[str, Any]:
    return compose()["services"]


def command_text(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip().strip('"')
    return pairs


def values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def schema() -> dict[str, Any]:
    return json.loads((CHART / "values.schema.json").read_text())


# --- a small stand-in for Helm's Go templates ---------------------------------------------------

TAG = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.DOTALL)
OPENERS = ("if", "with", "range", "define", "block")
CONTROL = (*OPENERS, "else", "end", "fail", "template")


def helpers() -> dict[str, str]:
    """The bodies of the ``define`` blocks in _helpers.tpl (nested blocks matched up)."""
    text = (CHART / "templates" / "_helpers.tpl").read_text()
    bodies: dict[str, str] = {}
    name, start, depth = None, 0, 0
    for match in TAG.finditer(text):
        words = match.group(2).split()
        keyword = words[0] if words else ""
        if name is None:
            if keyword == "define":
                name, start, depth = words[1].strip('"'), match.end(), 1
                trim_start = bool(match.group(3))
            continue
        if keyword in OPENERS:
            depth += 1
        elif keyword == "end":
            depth -= 1
            if depth == 0:
                body = text[start : match.start()]
                body = body.lstrip() if trim_start else body
                bodies[name] = body.rstrip() if match.group(1) else body
                name = None
    return bodies


def lookup(path: str, data: dict[str, Any]) -> Any:
    node: Any = data
    for part in path.split(".")[2:]:  # ".Values.a.b" -> a, b
        node = node.get(part) if isinstance(node, dict) else None
    return node


def scalar(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


def expand(expression: str, data: dict[str, Any], defs: dict[str, str]) -> str:
    words = expression.split()
    if not words or expression.startswith("/*") or words[0] in CONTROL:
        return ""
    if re.match(r"^\$\w+\s*:=", expression):
        return ""
    indent = re.search(r"\|\s*nindent\s+(\d+)", expression)
    include = re.match(r'include\s+"([\w.]+)"', expression)
    if include:
        body = render_template(defs[include.group(1)], data, defs).strip("\n")
        if indent:
            pad = " " * int(indent.group(1))
            return "\n" + "\n".join(pad + line if line else line for line in body.splitlines())
        return body if "\n" in body else PLACEHOLDER
    to_yaml = re.match(r"toYaml\s+(\.Values\.[\w.]+)", expression)
    if to_yaml and indent:
        dumped = yaml.safe_dump(lookup(to_yaml.group(1), data), default_flow_style=False)
        pad = " " * int(indent.group(1))
        return "\n" + "\n".join(pad + line for line in dumped.rstrip().splitlines())
    if words[0] == "toYaml":  # `toYaml .` inside a `with`: its value is not known here
        return ""
    quoted = re.search(r"\|\s*quote\s*$", expression)
    path = re.match(r"^(\.Values\.[\w.]+)", expression)
    joined = re.match(r'^join\s+"([^"]*)"\s+(\.Values\.[\w.]+)', expression)
    if joined:
        text = joined.group(1).join(lookup(joined.group(2), data))
    elif path:
        text = scalar(lookup(path.group(1), data))
        default = re.search(r'\|\s*default\s+"([^"]*)"', expression)
        if not text and default:
            text = default.group(1)
    else:
        text = PLACEHOLDER
    return json.dumps(text) if quoted else text


def render_template(text: str, data: dict[str, Any], defs: dict[str, str]) -> str:
    out: list[str] = []
    position, trim_next = 0, False
    for match in TAG.finditer(text):
        chunk = text[position : match.start()]
        chunk = chunk.lstrip() if trim_next else chunk
        out.append(chunk.rstrip() if match.group(1) else chunk)
        out.append(expand(match.group(2), data, defs))
        position, trim_next = match.end(), bool(match.group(3))
    tail = text[position:]
    out.append(tail.lstrip() if trim_next else tail)
    return "".join(out)


def manifest(name: str) -> dict[str, Any]:
    text = (CHART / "templates" / name).read_text()
    return yaml.safe_load(render_template(text, values(), helpers()))


def template_text(name: str) -> str:
    return (CHART / "templates" / name).read_text()


def server_container() -> dict[str, Any]:
    (container,) = manifest("deployment.yaml")["spec"]["template"]["spec"]["containers"]
    return container


def env_entries(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env") or []}


def gunicorn_default(setting: str) -> int:
    text = (ROOT / "gunicorn.conf.py").read_text()
    found = re.search(rf'_env_int\("{setting}",\s*(\d+)\)', text)
    assert found, f"gunicorn.conf.py no longer reads {setting}"
    return int(found.group(1))


def seconds(duration: str | int) -> int:
    if isinstance(duration, int):
        return duration
    total = 0
    for amount, unit in re.findall(r"(\d+)([hms])", duration):
        total += int(amount) * {"h": 3600, "m": 60, "s": 1}[unit]
    return total


# --- Dockerfile ---------------------------------------------------------------------------------


def test_image_runs_as_a_fixed_non_root_numeric_user():
    """OPS-03: the final stage switches to uid 10001 (numeric, so runAsNonRoot can check it)."""
    users = args_of(final_stage(), "USER")
    assert users, "the final stage has no USER: the container would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) == APP_UID
    assert not gid or (gid.isdigit() and int(gid) != 0)


def test_healthcheck_calls_healthz_with_python_not_curl():
    """The image's HEALTHCHECK asks /healthz with the standard library (no curl installed)."""
    (healthcheck,) = args_of(final_stage(), "HEALTHCHECK")
    assert "/healthz" in healthcheck and "urllib" in healthcheck
    assert "TRUSTED_HOSTS" in healthcheck, "the app answers only to trusted Host headers"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert not re.search(r"apt-get install[^\n]*\b(curl|wget)\b", dockerfile)


def test_final_stage_has_no_compiler_and_installs_nothing():
    """Dependencies install in the builder, hash-checked; the final stage copies the venv only."""
    builder, final = dockerfile_stages()[0], final_stage()
    assert len(dockerfile_stages()) >= 2
    installs = [args for args in args_of(builder, "RUN") if "pip install" in args]
    assert installs and all("--require-hashes" in args for args in installs)
    assert all("-r /tmp/requirements.txt" in args for args in installs)
    assert all("--no-cache-dir" in args for args in installs)
    final_runs = " ".join(args_of(final, "RUN"))
    assert "pip install" not in final_runs and "apt-get" not in final_runs
    assert not re.search(r"\b(gcc|g\+\+|build-essential|clang|make)\b", final_runs)
    assert any("--from=builder /opt/venv /opt/venv" in args for args in args_of(final, "COPY"))
    assert "requirements-dev" not in dockerfile_instructions_text()


def test_final_stage_copies_only_what_runs():
    """Only the app, migrations and entry points are copied; .dockerignore keeps secrets out."""
    allowed = {"app/", "migrations/", "config.py", "run.py", "manage.py", "gunicorn.conf.py"}
    for args in args_of(final_stage(), "COPY"):
        if args.startswith("--from="):
            continue
        *sources, _destination = args.split()
        assert set(sources) <= allowed, f"unexpected COPY {args}"
    ignore = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignore[0] == "*", ".dockerignore must be an allow-list"
    assert not {"!.env", "!instance/", "!instance", "!tests/", "!.git"} & set(ignore)


def test_container_command_is_gunicorn_with_its_config():
    """CMD serves with gunicorn.conf.py; nothing migrates at container start."""
    (command,) = args_of(final_stage(), "CMD")
    assert json.loads(command) == ["gunicorn", "-c", "gunicorn.conf.py", "run:app"]
    assert not args_of(final_stage(), "ENTRYPOINT")
    assert "db upgrade" not in dockerfile_instructions_text()


def test_image_environment_serves_production_on_all_interfaces():
    """HOST 0.0.0.0 (gunicorn.conf.py's default is loopback), port 8000, production settings."""
    env = env_of(final_stage())
    assert env["HOST"] == ALL_INTERFACES
    assert env["PORT"] == "8000" and args_of(final_stage(), "EXPOSE") == ["8000"]
    assert env["GATEHOUSE_ENV"] == "production"
    assert env["PROMETHEUS_MULTIPROC_DIR"] == METRICS_DIR
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"


def test_base_image_is_a_pinned_python_311_slim():
    """Both stages build FROM one pinned python:3.11.x-slim tag, never a floating one."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base[1])
    assert all(stage[0][1].startswith("${PYTHON_IMAGE}") for stage in dockerfile_stages())


# --- compose.yaml -------------------------------------------------------------------------------


def test_only_the_migrate_service_runs_db_upgrade_and_gatehouse_waits_for_it():
    """Migrations are one explicit one-shot service, never run by every replica at start."""
    migrating = [name for name, svc in services().items() if "db upgrade" in command_text(svc)]
    assert migrating == ["migrate"]
    depends = services()["gatehouse"]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["keygen"]["condition"] == "service_completed_successfully"
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"


def test_compose_publishes_ports_on_loopback_only():
    """Every published port is bound to 127.0.0.1; Gatehouse is reachable on 8000."""
    published = {name: svc.get("ports", []) for name, svc in services().items() if svc.get("ports")}
    assert "127.0.0.1:8000:8000" in published["gatehouse"]
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} publicly"


def test_every_compose_variable_is_in_env_example_and_env_is_git_ignored():
    """Secrets come from .env, which git ignores; .env.example lists every variable used."""
    text = (ROOT / "compose.yaml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_]\w*)", text))
    used |= set(re.findall(r"(?<!\$)\$([A-Za-z_]\w*)", text))
    assert used, "compose.yaml takes nothing from the environment?"
    assert used <= set(env_example()), f"missing in .env.example: {used - set(env_example())}"
    if shutil.which("git") and (ROOT / ".git").exists():
        result = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False)
        assert result.returncode == 0, ".env is not git-ignored"
        result = subprocess.run(["git", "check-ignore", "-q", ".env.example"], cwd=ROOT)
        assert result.returncode == 1, ".env.example must be committed"
    else:
        assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_env_example_holds_placeholders_not_secrets():
    """OPS-03: no private key or real-looking secret in the committed .env.example."""
    text = (ROOT / ".env.example").read_text()
    assert "PRIVATE KEY" not in text and "JWT_PRIVATE_KEY" not in text
    for key, value in env_example().items():
        if re.search(r"PASSWORD|TOKEN|SECRET|KEY", key):
            assert "change-me" in value, f"{key} should be a change-me placeholder"
        assert not re.fullmatch(r"[A-Za-z0-9+/=_-]{32,}", value), f"{key} looks like a secret"


def test_signing_key_is_generated_once_and_mounted_read_only():
    """OPS-03: keygen never overwrites the key; the server reads it from a read-only mount."""
    keygen, server = services()["keygen"], services()["gatehouse"]
    assert re.search(
        r"test -f (\S+) \|\| flask --app manage keys generate .*--out \1", command_text(keygen)
    )
    assert server["environment"]["JWT_PRIVATE_KEY_FILE"].startswith("/keys/")
    assert "keys:/keys:ro" in server["volumes"]
    assert "keys:/keys" in keygen["volumes"]


def test_app_uses_the_dml_role_and_migrations_the_owner_role():
    """DATA-05: the server connects as a DML-only role; only `migrate` gets the owner's URL."""
    for name, svc in services().items():
        env = svc.get("environment") or {}
        if "DATABASE_URL" in env:
            assert env["DATABASE_URL"].startswith("postgresql://gatehouse_app:")
        assert ("MIGRATION_DATABASE_URL" in env) == (name == "migrate")
    owner_url = services()["migrate"]["environment"]["MIGRATION_DATABASE_URL"]
    assert owner_url.startswith("postgresql://gatehouse_owner:")
    init = compose()["configs"]["postgres-roles"]["content"]
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO gatehouse_app" in init
    assert "SUPERUSER" not in init.replace("NOSUPERUSER", "")
    assert "ALTER DATABASE gatehouse OWNER TO gatehouse_owner" in init


def test_compose_services_have_health_checks():
    """postgres (pg_isready), redis (ping) and gatehouse (/healthz) report their health."""
    svc = services()
    assert "pg_isready" in " ".join(svc["postgres"]["healthcheck"]["test"])
    assert "ping" in " ".join(svc["redis"]["healthcheck"]["test"])
    assert "/healthz" in " ".join(svc["gatehouse"]["healthcheck"]["test"])


def test_compose_stop_grace_period_exceeds_gunicorn_graceful_timeout():
    """REL-08: docker waits longer than gunicorn lets requests in flight finish."""
    grace = seconds(services()["gatehouse"]["stop_grace_period"])
    assert grace > gunicorn_default("GUNICORN_GRACEFUL_TIMEOUT")


def test_compose_server_runs_read_only_with_a_mail_catcher():
    """Like the chart: read-only root, no capabilities; mail goes to the Mailpit catcher."""
    server = services()["gatehouse"]
    assert server["read_only"] is True and server["cap_drop"] == ["ALL"]
    assert TMP in server["tmpfs"]
    assert server["environment"]["MAIL_SERVER"] == "mailpit"
    assert "mailpit" in services()["mailpit"]["image"]


def test_every_gatehouse_container_has_a_writable_metrics_directory():
    """prometheus_client needs PROMETHEUS_MULTIPROC_DIR to exist; an empty value means the cwd."""
    image_dir = env_of(final_stage())["PROMETHEUS_MULTIPROC_DIR"]
    assert image_dir == METRICS_DIR
    for name in ("keygen", "migrate", "gatehouse"):
        svc = services()[name]
        assert METRICS_DIR in svc["tmpfs"], f"{name} hides the image's metrics directory"
        assert (svc.get("environment") or {}).get("PROMETHEUS_MULTIPROC_DIR", image_dir)


# --- Helm chart ---------------------------------------------------------------------------------


def test_helm_values_validate_against_the_schema():
    """values.yaml satisfies values.schema.json, itself a valid draft-07 schema."""
    jsonschema.Draft7Validator.check_schema(schema())
    jsonschema.Draft7Validator(schema()).validate(values())


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("config", "extra", "JWT_PRIVATE_KEY"), "-----BEGIN PRIVATE KEY-----"),
        (("config", "extra", "DATABASE_URL"), "postgresql://app:pw@db/gatehouse"),
        (("config", "jwtIssuer"), ""),
        (("config", "trustedHosts"), []),
        (("image", "pullPolicy"), "Sometimes"),
        (("secrets", "signingKey", "name"), ""),
        (("config", "mail", "server"), ""),
        (("config", "mail", "password"), "hunter2"),
        (("config", "extra", "MAIL_PASSWORD"), "hunter2"),
    ],
)
def test_helm_schema_refuses_secrets_in_values_and_missing_settings(path, value):
    """OPS-03: keys and database URLs are never values; required settings must be given."""
    data = values()
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema()).validate(data)


def test_deployment_probes_liveness_healthz_and_readiness_readyz():
    """Liveness checks only the process; readiness the database, schema and Redis."""
    container = server_container()
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        headers = container[probe]["httpGet"]["httpHeaders"]
        assert [header["name"] for header in headers] == ["Host"], "the public name, not the IP"
    assert "config.trustedHosts" in helpers()["gatehouse.probeHost"]


def test_deployment_runs_non_root_read_only_without_capabilities():
    """runAsNonRoot as the image's uid, read-only root, no escalation, ALL dropped, seccomp."""
    pod = manifest("deployment.yaml")["spec"]["template"]["spec"]
    container = server_container()
    context = container["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == APP_UID
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert context["runAsNonRoot"] is True and context["runAsUser"] == APP_UID
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False


def test_deployment_mounts_an_empty_dir_at_tmp():
    """With a read-only root, /tmp (and the metrics directory) are emptyDir volumes."""
    pod = manifest("deployment.yaml")["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in server_container()["volumeMounts"]}
    assert "emptyDir" in volumes[mounts[TMP]]
    assert "emptyDir" in volumes[mounts[METRICS_DIR]]


def test_deployment_never_migrates_only_the_hook_job_does():
    """The pods serve; `db upgrade` runs in the pre-install/pre-upgrade hook Job only."""
    assert "db upgrade" not in template_text("deployment.yaml")
    assert server_container()["command"] == ["gunicorn", "-c", "gunicorn.conf.py", "run:app"]
    job = manifest("migration-job.yaml")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "hook-succeeded" in annotations["helm.sh/hook-delete-policy"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["flask", "--app", "manage", "db", "upgrade"]
    assert "secretKeyRef" in env_entries(container)["MIGRATION_DATABASE_URL"]["valueFrom"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert METRICS_DIR in {mount["mountPath"] for mount in container["volumeMounts"]}
    for name in ("configmap.yaml", "service.yaml", "hpa.yaml", "pdb.yaml"):
        assert "db upgrade" not in template_text(name)


def test_signing_key_and_database_url_come_from_secret_key_refs():
    """OPS-03: JWT_PRIVATE_KEY and DATABASE_URL are read from Secrets, never from values."""
    env = env_entries(server_container())
    for name in ("JWT_PRIVATE_KEY", "DATABASE_URL"):
        assert set(env[name]) == {"name", "valueFrom"}, f"{name} must not have a value"
        assert set(env[name]["valueFrom"]["secretKeyRef"]) == {"name", "key"}
    config = manifest("configmap.yaml")["data"]
    assert not {"JWT_PRIVATE_KEY", "DATABASE_URL", "REDIS_URL", "METRICS_TOKEN"} & set(config)
    for template in (CHART / "templates").glob("*.yaml"):
        assert not re.search(r"^kind:\s*Secret\s*$", template.read_text(), re.MULTILINE)


def test_mail_settings_come_from_values_and_the_smtp_login_from_a_secret():
    """OPS-03: production needs MAIL_SERVER and MAIL_FROM; the SMTP password is no value."""
    data = values()
    config = manifest("configmap.yaml")["data"]
    assert config["MAIL_SERVER"] == data["config"]["mail"]["server"]
    assert config["MAIL_FROM"] == data["config"]["mail"]["from"]
    assert not {"MAIL_USERNAME", "MAIL_PASSWORD"} & set(config)
    helper = helpers()["gatehouse.serverSecretEnv"]
    assert "- name: MAIL_PASSWORD" in helper and ".passwordKey" in helper
    assert "MAIL_PASSWORD" in template_text("configmap.yaml"), "config.extra refuses it"


def test_termination_grace_exceeds_prestop_sleep_and_gunicorn_graceful_timeout():
    """REL-08: in-flight requests finish before the kubelet kills the pod."""
    data = values()
    pod = manifest("deployment.yaml")["spec"]["template"]["spec"]
    graceful = data["gunicorn"]["gracefulTimeout"]
    assert pod["terminationGracePeriodSeconds"] > data["preStopSleepSeconds"] + graceful
    assert manifest("configmap.yaml")["data"]["GUNICORN_GRACEFUL_TIMEOUT"] == str(graceful)
    assert server_container()["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    assert "fail" in template_text("deployment.yaml"), "the chart refuses a too-short grace"


def test_chart_scales_on_cpu_and_keeps_one_pod_through_disruptions():
    """autoscaling/v2 on CPU; the PDB selects the server pods, not the migration Job's."""
    hpa = manifest("hpa.yaml")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert (
        manifest("pdb.yaml")["spec"]["minAvailable"]
        == values()["podDisruptionBudget"]["minAvailable"]
    )
    selector = manifest("pdb.yaml")["spec"]["selector"]["matchLabels"]
    job_labels = manifest("migration-job.yaml")["spec"]["template"]["metadata"]["labels"]
    assert job_labels["app.kubernetes.io/name"].endswith("-migration")
    assert not selector.items() <= job_labels.items(), "the PDB would count the migration pod"


def test_configmap_sets_production_and_gunicorn_from_values():
    """The ConfigMap carries production's non-secret settings and gunicorn's tuning."""
    data = manifest("configmap.yaml")["data"]
    assert data["GATEHOUSE_ENV"] == "production"
    assert data["HOST"] == ALL_INTERFACES
    assert data["TRUSTED_HOSTS"] == ",".join(values()["config"]["trustedHosts"])
    assert data["WEB_CONCURRENCY"] == str(values()["gunicorn"]["workers"])
    assert data["LOG_FORMAT"] == "json"


def test_service_account_mounts_no_token():
    """Gatehouse never calls the Kubernetes API."""
    assert manifest("serviceaccount.yaml")["automountServiceAccountToken"] is False


# --- workflows ----------------------------------------------------------------------------------


def workflow(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())


def test_workflow_actions_are_pinned_to_commits():
    """Every third-party action is a full commit SHA (or a tagged docker:// image)."""
    for path in (ROOT / ".github" / "workflows").glob("*.yml"):
        for uses in re.findall(r"uses:\s*(\S+)", path.read_text()):
            if uses.startswith("docker://"):
                assert re.search(r":\d+\.\d+\.\d+", uses), uses
            else:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), uses


def test_ci_workflow_runs_the_same_checks_as_ci_run():
    """lint, migrations, API conformance, deployment checks, tests on PostgreSQL and SQLite."""
    ci = workflow("ci.yml")
    job = ci["jobs"]["test"]
    assert set(job["services"]) == {"postgres", "redis"}
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    for target in ("lint", "check-migrations", "api-conformance", "check-deploy", "test"):
        assert f"make {target}" in runs
    assert "TEST_DATABASE_URL=" in runs and "REDIS_URL=" in runs
    assert ci["permissions"] == {"contents": "read"}


def test_release_deploys_atomically_behind_the_production_environment():
    """Tags build and push to ghcr.io; deploy waits for `production` and rolls back on failure."""
    release = workflow("release.yml")
    assert release[True]["push"]["tags"] == ["v*"]  # PyYAML reads the key `on` as True
    assert release["permissions"] == {}
    image, deploy = release["jobs"]["image"], release["jobs"]["deploy"]
    assert image["permissions"] == {"contents": "read", "packages": "write"}
    assert deploy["environment"] == "production" and deploy["needs"] == "image"
    script = "\n".join(step.get("run", "") for step in deploy["steps"])
    assert "helm upgrade --install" in script
    assert "--atomic" in script and "--wait" in script
    assert "secrets.KUBECONFIG" in json.dumps(deploy)
