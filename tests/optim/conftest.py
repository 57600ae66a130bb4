import pytest
import torch


@pytest.fixture(autouse=True)
def _fresh_compile_cache():
    """Each optimizer test starts from an empty torch.compile cache: training tests that run earlier in the
    same process compile the update rules for other dtypes and groupings, and tests that ask for the
    compiled path must not inherit their recompile count."""
    torch._dynamo.reset()
    yield
