"""The Shakespeare split and the cache mechanics, on a fake cache (no network)."""

import pytest

from llmaccel.data import CALIBRATION_PLAYS, EVALUATION_PLAYS, shakespeare
from llmaccel.data.cache import publish_dir


@pytest.fixture
def fake_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMACCEL_CACHE", str(tmp_path))
    texts = shakespeare.texts_dir()
    texts.mkdir(parents=True)
    for play in EVALUATION_PLAYS + CALIBRATION_PLAYS:
        (texts / f"{play}_gut.txt").write_text(f"text of {play}\n")
    return texts


def test_splits_are_disjoint_and_fixed():
    assert not set(EVALUATION_PLAYS) & set(CALIBRATION_PLAYS)
    assert len(EVALUATION_PLAYS) >= 2 and len(CALIBRATION_PLAYS) >= 2


def test_split_text_in_fixed_order(fake_cache):
    text = shakespeare.shakespeare_text("evaluation")
    assert text == "\n\n".join(f"text of {p}\n" for p in EVALUATION_PLAYS)
    assert "julius_caesar" in shakespeare.shakespeare_text("calibration")


def test_bad_split_and_missing_play(fake_cache):
    with pytest.raises(ValueError, match="split must be"):
        shakespeare.shakespeare_text("train")
    (fake_cache / "hamlet_gut.txt").unlink()
    with pytest.raises(FileNotFoundError, match="hamlet"):
        shakespeare.shakespeare_text("evaluation")


def test_publish_dir_is_all_or_nothing(tmp_path):
    final = tmp_path / "out"

    def failing(tmp):
        (tmp / "half.txt").write_text("partial")
        raise KeyboardInterrupt  # an interrupted build

    with pytest.raises(KeyboardInterrupt):
        publish_dir(final, failing)
    assert not final.exists() and list(tmp_path.iterdir()) == []

    publish_dir(final, lambda tmp: (tmp / "done.txt").write_text("ok"))
    assert (final / "done.txt").read_text() == "ok"
    # An existing result is kept as it is: the builder does not run again.
    publish_dir(final, failing)
    assert (final / "done.txt").read_text() == "ok"


def test_calibration_ids_rejects_empty_requests():
    from llmaccel.data import calibration_ids

    with pytest.raises(ValueError, match="n_samples >= 1"):
        calibration_ids(None, n_samples=0)
    with pytest.raises(ValueError, match="seq_len >= 2"):
        calibration_ids(None, seq_len=1)
