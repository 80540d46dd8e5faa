"""Shared fixtures: the 70-image FER2013 sample (tests/data) and an isolated cache folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DATA = Path(__file__).parent / "data"
SAMPLE_TAR = DATA / "fer2013_sample.tar.gz"
SHARED = Path(__file__).resolve().parents[2] / "shared"
FULL_TAR = Path(os.environ.get("FER2013_PATH", SHARED / "data" / "fer2013" / "fer2013_images.tar.gz"))


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Never touch the user's ~/.cache during tests."""
    old = os.environ.get("FER_HYBRID_CACHE")
    os.environ["FER_HYBRID_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("FER_HYBRID_CACHE", None)
    else:
        os.environ["FER_HYBRID_CACHE"] = old


@pytest.fixture(scope="session")
def sample_tar() -> Path:
    return SAMPLE_TAR


@pytest.fixture(scope="session")
def sample_data(sample_tar):
    """The fixture as 5-class FER2013: train 25, val 15, test 10 images."""
    from fer_hybrid.data import load_fer2013

    return load_fer2013(sample_tar)


@pytest.fixture(scope="session")
def full_data_path() -> Path:
    if not FULL_TAR.exists():
        pytest.skip(f"full FER2013 not found at {FULL_TAR} (set FER2013_PATH to run full-data tests)")
    return FULL_TAR
