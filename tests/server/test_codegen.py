"""server/pb/ is exactly what `python -m server.codegen` makes of proto/ (STYLE practice 3)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from server import codegen

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "server" / "pb" / "cdp" / "v1"
MODULES = ["profile_store_pb2", "profile_store_pb2_grpc", "admin_pb2", "admin_pb2_grpc",
           "shard_pb2", "shard_pb2_grpc"]


def _run(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_checked_in_code_is_current():
    done = _run("-m", "server.codegen", "--check")
    assert done.returncode == 0, f"{done.stdout}{done.stderr}"


def test_check_reports_stale_missing_and_extra_files(tmp_path, monkeypatch):
    copy = tmp_path / "pb"
    shutil.copytree(codegen.OUT_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "cdp" / "v1" / "admin_pb2.py").write_text("# edited by hand\n")
    (copy / "cdp" / "v1" / "shard_pb2.pyi").unlink()
    (copy / "cdp" / "v1" / "old_pb2.py").write_text("")
    monkeypatch.setattr(codegen, "OUT_DIR", copy)
    problems = codegen.check()
    assert [p.split()[0] for p in problems] == ["missing:", "extra:", "stale:"]
    assert "shard_pb2.pyi" in problems[0] and "old_pb2.py" in problems[1] and "admin_pb2.py" in problems[2]
    assert codegen.main(["--check"]) == 1


def test_no_generated_module_imports_the_bare_cdp_package():
    # `from cdp.v1 import x_pb2` only works with server/pb itself on sys.path
    for path in GENERATED.glob("*.py*"):
        text = path.read_text()
        assert not re.search(r"^from cdp\b|^import \w+_pb2", text, re.MULTILINE), path.name


def test_modules_import_from_anywhere(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = f"from server.pb.cdp.v1 import {', '.join(MODULES)}; import sys; assert 'cdp' not in sys.modules"
    done = _run("-c", code, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr


def _lower_bound(requirements: list[str], name: str, op: str = ">=") -> tuple[int, ...]:
    for req in requirements:
        m = re.fullmatch(rf"{re.escape(name)}\s*{re.escape(op)}\s*([\d.]+)", req.strip())
        if m:
            return tuple(map(int, m.group(1).split(".")))
    raise AssertionError(f"pyproject.toml has no {name}{op}… requirement")


def _stamped_versions() -> tuple[tuple[int, ...], tuple[int, ...]]:
    grpc_text = (GENERATED / "profile_store_pb2_grpc.py").read_text()
    pb_text = (GENERATED / "profile_store_pb2.py").read_text()
    grpc_version = re.search(r"GRPC_GENERATED_VERSION = '([\d.]+)'", grpc_text).group(1)
    pb_version = re.search(r"Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+),", pb_text).groups()
    return tuple(map(int, grpc_version.split("."))), tuple(map(int, pb_version))


def test_dependency_bounds_admit_only_runtimes_the_generated_code_accepts():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    grpc_version, protobuf_version = _stamped_versions()
    assert _lower_bound(project["dependencies"], "grpcio") >= grpc_version
    assert _lower_bound(project["dependencies"], "protobuf") >= protobuf_version
    # the pinned codegen tool is the one whose version the checked-in output carries
    assert _lower_bound(project["optional-dependencies"]["test"], "grpcio-tools", "==") == grpc_version
