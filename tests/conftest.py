import json
import os

import pytest
import torch
from PIL import Image

# Two cores on the project's machines: keep the suite from oversubscribing them. Under pytest-xdist
# (make test) the workers share the cores: one thread each.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1) // _WORKERS))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def image_folder(tmp_path):
    """A 4-class image folder of 24 8x8 PNGs per class, classes told apart by colour."""
    root = tmp_path / "imgs"
    g = torch.Generator().manual_seed(0)
    for c, name in enumerate(["ant", "bee", "cat", "dog"]):
        (root / name).mkdir(parents=True)
        for i in range(24):
            base = torch.zeros(8, 8, 3, dtype=torch.uint8)
            base[..., c % 3] = 150 + 50 * (c // 3)
            noise = torch.randint(0, 60, (8, 8, 3), generator=g, dtype=torch.uint8)
            Image.fromarray((base + noise).numpy()).save(root / name / f"{i:03d}.png")
    return root


def cli_train_args(tmp_path, image_folder, *extra):
    """``reslab train`` arguments for a small, fast run of resnet20 on ``image_folder`` into tmp_path/runs/t."""
    return ["train", "--name", "t", f"--out_dir={json.dumps(str(tmp_path / 'runs'))}",
            "--data.dataset=folder", f"--data.path={json.dumps(str(image_folder))}", "--data.val_size=16",
            "--data.batch_size=16", "--data.cache_dir=" + json.dumps(str(tmp_path / "cache")),
            "--model.name=resnet20", "--train.precision=fp32", "--train.log_every=2", "--quiet", *extra]


@pytest.fixture
def train_args():
    return cli_train_args


@pytest.fixture(scope="session")
def chromium():
    """Headless Chromium's path; skipped where it is missing, except under CI=true, where it must be there."""
    import shutil

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but headless Chromium is not installed (Debian package 'chromium')")
        pytest.skip("headless Chromium is not installed (Debian package 'chromium')")
    return path


@pytest.fixture(scope="session")
def chromium_dom(chromium):
    """``dom(url)``: the DOM of ``url`` after its scripts ran, as headless Chromium serialises it."""
    import subprocess
    import tempfile

    def dom(url: str, *, budget_ms: int = 5000) -> str:
        with tempfile.TemporaryDirectory() as profile:  # its own profile: browsers in parallel workers
            flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--virtual-time-budget={budget_ms}",
                     f"--user-data-dir={profile}"]
            return subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=120).stdout

    return dom


# make test hands whole files to the workers (--dist loadfile) in the order collected (--no-loadscope-reorder).
# The slowest files go first, so that the last file to start is a short one and the workers end together;
# otherwise a several-minute file that happens to start last runs alone on an idle machine. Measured with
# `pytest -n auto --dist loadfile --durations=60`, slowest first; the files not named keep their order after.
SLOWEST_FILES = ["distributed/test_ddp.py", "report/test_report.py", "optim/test_optimizers.py",
                 "workflows/test_hardening.py", "report/test_experiments.py", "test_cli.py", "models/test_zoo.py",
                 "workflows/test_ablation.py", "workflows/test_export.py", "test_memory.py", "workflows/test_runs.py",
                 "optim/test_convergence.py"]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}

    def file_rank(item) -> int:
        path = item.path.relative_to(config.rootpath / "tests").as_posix()
        return rank.get(path, len(SLOWEST_FILES))

    items.sort(key=file_rank)  # stable: the tests within a file, and the files not named, keep their order
