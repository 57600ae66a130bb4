"""What the report and experiment tests share: a small, fast configuration on the embedded sample."""

import pytest

from reslab.config import load_config


def small_cfg(tmp_path, steps=4, *experiment):
    return load_config(None, [*experiment, f"--train.steps={steps}", "--train.eval_every=2", "--train.log_every=1",
                              "--train.precision=fp32", "--data.dataset=sample", "--data.limit=256",
                              "--data.val_size=64", "--data.batch_size=32", "--data.eval_batch_size=64",
                              f"--data.cache_dir=\"{tmp_path / 'cache'}\""])


@pytest.fixture(scope="session")
def base_cfg():
    """``base_cfg(tmp_path, steps, *overrides)``: a few steps of a small run on 256 sample images, fp32."""
    return small_cfg
