"""The GPU / scale-out kit in docker/: compose stack, work-pool templates, GPU image, install script.

Nothing here needs a Docker engine: compose.yaml is parsed with PyYAML and checked with
`docker-compose config` (Debian's docker-compose, installed by `scripts/setup.sh --test`), the work-pool
templates are rendered with Prefect's own templating and fed to docker-py's HostConfig, and the
install script runs in its --check mode.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
SCRIPT = DOCKER / "install-gpu-image.sh"
POOLS = DOCKER / "work-pools"

SERVICES = {"postgres", "minio", "create-buckets", "mlflow", "prefect-server", "worker", "train"}
GPU_SERVICES = {"worker", "train"}
PLACEHOLDER = re.compile(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _env_example() -> dict[str, str]:
    env = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"not KEY=VALUE in .env.example: {line!r}"
            env[key.strip()] = value.strip()
    return env


def _published_ports(service: dict) -> list[tuple[str, str]]:
    """(host_ip, spec) for every published port, short or long syntax."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.append((str(port.get("host_ip", "")), json.dumps(port)))
        else:
            spec = str(port)
            parts = spec.split(":")
            out.append((parts[0] if len(parts) == 3 else "", spec))
    return out


def _gpu_devices(service: dict) -> list[dict]:
    return service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, **kw)


# ---------------------------------------------------------------- compose.yaml (PyYAML)


def test_compose_has_the_stack():
    services = _compose()["services"]
    assert set(services) == SERVICES
    assert services["train"].get("profiles") == ["train"]  # one-shot job, not started by `up`


def test_every_published_port_is_bound_to_localhost():
    services = _compose()["services"]
    published = {name: _published_ports(svc) for name, svc in services.items()}
    assert {name for name, ports in published.items() if ports} == {"minio", "mlflow", "prefect-server"}
    for name, ports in published.items():
        for host_ip, spec in ports:
            assert host_ip == "127.0.0.1", f"{name} publishes {spec} beyond 127.0.0.1"
    assert "ports" not in services["postgres"]  # the database stays on the compose network
    for name in GPU_SERVICES:  # host networking: no ports of their own, 127.0.0.1 reaches the stack
        assert services[name]["network_mode"] == "host"


def test_gpu_services_reserve_nvidia_gpus():
    services = _compose()["services"]
    for name, svc in services.items():
        devices = _gpu_devices(svc)
        if name not in GPU_SERVICES:
            assert devices == [], f"{name} should not reserve GPUs"
            continue
        assert len(devices) == 1, name
        dev = devices[0]
        assert dev["driver"] == "nvidia"
        assert dev["capabilities"] == ["gpu"]
        assert dev["count"] == "all"
        assert svc["build"]["dockerfile"] == "docker/Dockerfile.gpu"
        assert svc["volumes"] == ["..:/app"] and svc["working_dir"] == "/app"
        assert "shm_size" in svc


def test_mlflow_uses_postgres_and_minio():
    svc = _compose()["services"]["mlflow"]
    env = svc["environment"]
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql://")
    assert env["MLFLOW_BACKEND_STORE_URI"].endswith("@postgres:5432/${MLFLOW_DB:-mlflow}")
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    cmd = " ".join(svc["command"])
    assert "mlflow server" in cmd
    assert '--backend-store-uri "$$MLFLOW_BACKEND_STORE_URI"' in cmd
    assert "--serve-artifacts" in cmd
    assert '--artifacts-destination "s3://$$MLFLOW_BUCKET/artifacts"' in cmd
    assert svc["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "create-buckets": {"condition": "service_completed_successfully"},
    }


def test_prefect_server_uses_postgres_and_worker_pulls_gpu_pool():
    services = _compose()["services"]
    env = services["prefect-server"]["environment"]
    assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"].endswith("@postgres:5432/${PREFECT_DB:-prefect}")
    assert services["prefect-server"]["command"] == ["prefect", "server", "start"]
    worker = services["worker"]
    assert worker["command"][:4] == ["prefect", "worker", "start", "--pool"]
    assert worker["command"][4] == "${PREFECT_WORK_POOL:-gpu}"
    assert worker["environment"]["PREFECT_API_URL"] == "http://127.0.0.1:4200/api"
    assert worker["environment"]["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    train_cmd = " ".join(services["train"]["command"])
    assert "performer stage train_synthesis --nproc" in train_cmd  # torchrun on the stage's dvc.yaml command


def test_buckets_are_created_for_mlflow_and_dvc():
    svc = _compose()["services"]["create-buckets"]
    script = " ".join(svc["command"])
    assert "mc mb --ignore-existing" in script
    assert '"stack/$$MLFLOW_BUCKET"' in script and '"stack/$$DVC_BUCKET"' in script
    assert svc["depends_on"] == {"minio": {"condition": "service_healthy"}}


def test_every_referenced_variable_is_in_env_example():
    text = COMPOSE.read_text()
    # ${VAR}, ${VAR:-default}, ${VAR:?message}; $$VAR is an escape for the container's shell
    referenced = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    required = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*):\?", text))
    env = _env_example()
    image_overrides = {v for v in referenced if v.endswith("_IMAGE")}  # optional, documented in compose.yaml
    assert required == {"POSTGRES_USER", "POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"}
    missing = referenced - image_overrides - set(env)
    assert not missing, f"compose.yaml uses variables missing from .env.example: {sorted(missing)}"
    for var in required:
        assert env[var], f"{var} is empty in .env.example"


def test_env_example_holds_placeholders_only():
    env = _env_example()
    for key in ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD"):
        assert env[key].startswith("change-me"), f"{key} must be a placeholder"
    assert len(env["MINIO_ROOT_PASSWORD"]) >= 8  # MinIO refuses shorter root passwords
    for key, value in env.items():  # these end up in database URLs
        assert re.fullmatch(r"[A-Za-z0-9._:/\-]*", value), f"{key}={value!r} is not URL-safe"
    assert ".env" in (DOCKER / ".gitignore").read_text().split()


# ---------------------------------------------------------------- compose.yaml (docker-compose config)


def _compose_config(env_file: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is missing: run scripts/setup.sh --test (it installs Debian's docker-compose)"
    return _run([exe, "--env-file", str(env_file), "-f", str(COMPOSE), "config"])


@pytest.mark.tools
def test_docker_compose_config_accepts_the_file():
    res = _compose_config(ENV_EXAMPLE)
    assert res.returncode == 0, res.stderr
    config = yaml.safe_load(res.stdout)
    services = config["services"]
    assert set(services) == SERVICES
    for name, svc in services.items():  # after interpolation, in docker-compose's normal form
        for host_ip, spec in _published_ports(svc):
            assert host_ip == "127.0.0.1", f"{name}: {spec}"
    env = _env_example()
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == env["POSTGRES_PASSWORD"]
    assert services["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"] == (
        f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@postgres:5432/{env['MLFLOW_DB']}"
    )
    assert services["worker"]["command"][4] == env["PREFECT_WORK_POOL"]
    assert _gpu_devices(services["worker"]) == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]


@pytest.mark.tools
def test_docker_compose_config_refuses_missing_credentials(tmp_path):
    env_file = tmp_path / "partial.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in _env_example().items() if k != "MINIO_ROOT_PASSWORD"))
    res = _compose_config(env_file)
    assert res.returncode != 0
    assert "MINIO_ROOT_PASSWORD" in res.stderr


# ---------------------------------------------------------------- work-pool templates


def _render(template: dict, overrides: dict | None = None) -> dict:
    """The job configuration Prefect builds from the template, the variables' defaults and overrides."""
    from prefect.utilities.templating import apply_values

    props = template["variables"]["properties"]
    values = {k: v["default"] for k, v in props.items() if "default" in v}
    values.update(overrides or {})
    jsonschema.validate(values, template["variables"])
    return apply_values(template["job_configuration"], values)


def _placeholders(node) -> set[str]:
    if isinstance(node, dict):
        return set().union(*(_placeholders(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(_placeholders(v) for v in node)) if node else set()
    if isinstance(node, str) and (m := PLACEHOLDER.match(node)):
        return {m.group(1)}
    return set()


@pytest.mark.parametrize("name", ["docker-gpu.json", "kubernetes-gpu.json"])
def test_template_placeholders_match_variables(name):
    template = json.loads((POOLS / name).read_text())
    assert set(template) == {"job_configuration", "variables"}
    used = _placeholders(template["job_configuration"])
    declared = set(template["variables"]["properties"])
    assert used - declared == set(), f"placeholders without a variable: {sorted(used - declared)}"
    assert {"gpu_count", "shm_size", "image"} <= used


def test_docker_pool_requests_all_gpus():
    import docker

    template = json.loads((POOLS / "docker-gpu.json").read_text())
    kwargs = template["job_configuration"]["container_create_kwargs"]
    assert kwargs["device_requests"] == [{"driver": "nvidia", "count": "{{ gpu_count }}", "capabilities": [["gpu"]]}]
    assert template["variables"]["properties"]["gpu_count"]["default"] == -1  # -1 = every GPU

    job = _render(template)
    assert job["image"] == "deep-performer-gpu:latest"
    assert job["network_mode"] == "host"
    assert job["container_create_kwargs"]["device_requests"][0]["count"] == -1
    host_config = docker.types.HostConfig(version="1.44", **job["container_create_kwargs"])
    assert host_config["DeviceRequests"] == [
        {"Driver": "nvidia", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}
    ]
    assert host_config["ShmSize"] == 16 * 1024**3

    two = _render(template, {"gpu_count": 2})
    assert two["container_create_kwargs"]["device_requests"][0]["count"] == 2
    with pytest.raises(jsonschema.ValidationError):
        _render(template, {"gpu_count": "all"})


def test_kubernetes_pool_limits_nvidia_gpus():
    template = json.loads((POOLS / "kubernetes-gpu.json").read_text())
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "{{ gpu_count }}"

    job = _render(template, {"gpu_count": 4})
    pod = job["job_manifest"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    shm = {v["name"]: v for v in pod["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    assert shm[mount["name"]]["emptyDir"]["medium"] == "Memory"
    assert job["job_manifest"]["kind"] == "Job" and pod["restartPolicy"] == "Never"

    default = _render(template)["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert default["resources"]["limits"]["nvidia.com/gpu"] == 1
    with pytest.raises(jsonschema.ValidationError):
        _render(template, {"gpu_count": 0})


# ---------------------------------------------------------------- GPU image and install script


def _torch_pin() -> str:
    (pin,) = re.findall(r'^\s*"torch==([^"]+)"', (ROOT / "pyproject.toml").read_text(), flags=re.M)
    return pin


def test_dockerfile_gpu_runs_the_install_script():
    text = (DOCKER / "Dockerfile.gpu").read_text()
    instructions = [
        line.split(None, 1)
        for line in re.sub(r"\\\n", " ", text).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    runs = [rest for op, rest in instructions if op == "RUN"]
    assert len(runs) == 1 and runs[0].rstrip().endswith("bash docker/install-gpu-image.sh")
    copies = [rest for op, rest in instructions if op == "COPY"]
    script_copy = copies.index("docker/install-gpu-image.sh docker/install-gpu-image.sh")
    assert copies.index("pyproject.toml README.md ./") < script_copy  # the script checks the pin against it
    assert f"TORCH_VERSION={_torch_pin()}" in [rest for op, rest in instructions if op == "ARG"]
    assert instructions[-1] == ["CMD", '["dvc", "repro"]']
    assert any(op == "ENV" and rest.startswith("PATH=/opt/venv/bin:") for op, rest in instructions)
    ignored = (DOCKER / "Dockerfile.gpu.dockerignore").read_text().split()
    assert {".venv", ".git", "data", "models", "docker/.env"} <= set(ignored)


def test_cpu_dockerfile_keeps_machine_state_out_of_the_image():
    text = (DOCKER / "Dockerfile").read_text()
    assert "RUN bash scripts/setup.sh" in text and 'CMD ["make", "repro"]' in text
    ignored = {
        line.strip()
        for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", "data", "models", "mlflow.db", ".dvc/cache", "docker/.env"} <= ignored
    assert ".git" not in ignored  # `make repro` runs DVC inside the image, which needs the repository


def test_install_script_is_valid_bash():
    res = _run(["bash", "-n", str(SCRIPT)])
    assert res.returncode == 0, res.stderr


def test_install_script_check_mode():
    res = _run(["bash", str(SCRIPT), "--check"])
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    for pkg in ("libfluidsynth3", "fluid-soundfont-gm", "musescore-general-soundfont", "timgm6mb-soundfont"):
        assert f"ok: {pkg} " in out
    assert f"ok: torch pin {_torch_pin()} matches pyproject.toml" in out
    assert f"/opt/venv/bin/python -m pip install torch=={_torch_pin()}\n" in out
    assert "check passed (nothing changed)" in out


def test_install_script_check_mode_fails_on_a_pin_mismatch():
    import os

    res = _run(["bash", str(SCRIPT), "--check"], env={**os.environ, "TORCH_VERSION": "0.0.1"})
    assert res.returncode == 1
    assert f"pyproject.toml pins torch=={_torch_pin()}" in res.stderr
    assert _run(["bash", str(SCRIPT), "--bogus"]).returncode == 2


def test_docs_name_the_kit_files():
    doc = (ROOT / "docs" / "scaling-out.md").read_text()
    for cmd in (
        (
            "prefect work-pool create deep-performer-gpu-docker --type docker "
            "--base-job-template docker/work-pools/docker-gpu.json"
        ),
        (
            "prefect work-pool create deep-performer-gpu-k8s --type kubernetes "
            "--base-job-template docker/work-pools/kubernetes-gpu.json"
        ),
        "docker compose --env-file docker/.env -f docker/compose.yaml up -d",
        "dvc remote modify minio endpointurl http://127.0.0.1:9000",
        "performer stage train_synthesis --nproc gpu",
    ):
        assert cmd in doc, cmd
    for path in re.findall(r"\bdocker/[\w./-]+\.(?:json|yaml|sh|example|gpu|mlflow)\b", doc):
        assert (ROOT / path).exists(), f"docs/scaling-out.md names a missing file: {path}"
