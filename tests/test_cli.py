"""The CLI's method names map to the configs they promise; contradictory flags are refused."""

import pytest

import llmaccel
from llmaccel.cli import _parser, make_config


def test_make_config():
    assert make_config("rtn") == llmaccel.Int4WeightOnly(128, True)
    assert make_config("rtn", bits=8) == llmaccel.Int8WeightOnly()
    assert make_config("gptq", group_size=64, symmetric=False) == llmaccel.GPTQ(4, 64, False)
    assert make_config("awq") == llmaccel.AWQ(4, 128, symmetric=False)
    assert make_config("smoothquant", alpha=0.8) == llmaccel.SmoothQuant(0.8)


def test_make_config_refuses_bad_combinations():
    with pytest.raises(ValueError, match="symmetric"):
        make_config("rtn", bits=8, symmetric=False)
    with pytest.raises(ValueError, match="symmetric"):
        make_config("gptq", bits=8, symmetric=False)
    with pytest.raises(ValueError, match="group_size"):
        make_config("rtn", group_size=48)
    with pytest.raises(ValueError, match="method"):
        make_config("hqq")


def test_every_command_has_help(capsys):
    for cmd in ("fetch-defaults", "quantize", "eval", "bench", "perplexity"):
        with pytest.raises(SystemExit) as e:
            _parser().parse_args([cmd, "--help"])
        assert e.value.code == 0
    assert "--method" in capsys.readouterr().out
