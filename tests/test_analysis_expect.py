"""`expect` lines, CLI budgets, exit codes, and the `check` JSON contract."""

from __future__ import annotations

import json
import math

import pytest

import cnndsl
from cnndsl.analysis.expect import METRICS, check_expectations, parse_amount
from cnndsl.analysis.figures import Figures
from cnndsl.cli import main

NET = "input 3x32x32\nconv3x3(16) -> relu -> maxpool2 -> conv3x3(32) -> gap -> fc(10)\n"
PARAMS = (3 * 9 * 16 + 16) + (16 * 9 * 32 + 32) + (32 * 10 + 10)


def _failures(extra: str):
    return check_expectations(Figures(cnndsl.parse(NET + extra)))


@pytest.mark.parametrize(
    "line",
    [
        f"expect params == {PARAMS}",
        "expect params < 1M",
        f"expect trainable_params == {PARAMS}",
        "expect macs > 0.5M",
        "expect rf >= 224",
        "expect output == 10",
        "expect output == (10,)",
        "expect activation_mb < 1",
        "expect peak_activation_mb < 0.2",
        "expect layers == 7",
        "expect frozen_params == 0",
    ],
)
def test_expectations_that_hold(line):
    assert _failures(line) == []


def test_failed_expectation_is_located_and_says_both_values():
    (d,) = _failures("\n\nexpect params == 1000")
    assert (d.code, d.severity, d.span.line) == ("E401", "error", 5)
    assert "1,000" in d.message and f"{PARAMS:,}" in d.message


def test_unknown_metric_suggests():
    (d,) = _failures("expect parms < 5")
    assert d.code == "E402" and "`params`" in d.hint


def test_shape_expectation_needs_equality():
    (d,) = _failures("expect output <= (10,)")
    assert d.code == "E403"


def test_rf_of_a_local_network_is_its_size():
    fig = Figures(cnndsl.parse("input 3x32x32\nconv3x3(4) -> conv3x3(4)"))
    assert METRICS["rf"][1](fig) == 5
    assert METRICS["rf"][1](Figures(cnndsl.parse(NET))) == math.inf


@pytest.mark.parametrize(
    "text, value",
    [("25M", 25_000_000), ("5G", 5_000_000_000), ("1.5k", 1500), ("11_689_512", 11_689_512), ("0.25", 0.25)],
)
def test_parse_amount(text, value):
    assert parse_amount(text) == value


@pytest.fixture
def spec(tmp_path):
    def write(text, name="net.cnn"):
        p = tmp_path / name
        p.write_text(text)
        return str(p)

    return write


def test_cli_exit_codes(spec, capsys):
    assert main(["check", spec(NET + f"expect params == {PARAMS}\n")]) == 0
    assert main(["check", spec(NET + "expect params == 1\n")]) == 1
    assert "net.cnn:3:1: error[E401]" in capsys.readouterr().err
    assert main(["check", spec(NET + "expect parms == 1\n")]) == 2
    assert main(["check", spec("input 3x32x32\nconv3x3(4) -> nope\n")]) == 2


@pytest.mark.parametrize(
    "flags, code",
    [
        (["--max-params", "10K"], 0),
        (["--max-params", "5K"], 1),
        (["--max-macs", "1G"], 0),
        (["--max-macs", "1M"], 1),
        (["--min-rf", "224"], 0),
        (["--max-activation-mb", "0.01"], 1),
        (["--max-activation-mb", "1"], 0),
    ],
)
def test_cli_budgets(spec, capsys, flags, code):
    assert main(["check", spec(NET), *flags]) == code
    if code:
        assert "E404" in capsys.readouterr().err


def test_min_rf_budget_on_a_local_network(spec, capsys):
    assert main(["check", spec("input 3x32x32\nconv3x3(4) -> conv3x3(4)\n"), "--min-rf", "7"]) == 1


def test_check_json_contract(spec, capsys):
    path = spec(NET + "freeze conv1\n")
    assert main(["check", path, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in (
        "network",
        "input_shape",
        "output_shape",
        "params",
        "layers",
        "diagnostics",
        "macs",
        "trainable_params",
        "activation_bytes",
        "peak_activation_bytes",
        "receptive_field",
    ):
        assert key in out
    assert out["params"] == PARAMS and out["trainable_params"] == PARAMS - (3 * 9 * 16 + 16)
    assert out["receptive_field"]["size"] is None
    # conv 3 (r 3) -> maxpool2 (r 4, stride 2, centre 0.5) -> conv 3 (r 4 + 2*2 = 8)
    conv2 = next(layer for layer in out["layers"] if layer["name"] == "conv2")
    assert set(conv2) >= {
        "name",
        "op",
        "output_shape",
        "params",
        "line",
        "macs",
        "trainable_params",
        "activation_bytes",
        "receptive_field",
    }
    assert conv2["receptive_field"] == {
        "size": 8,
        "stride": 2,
        "offset": 0.5,
        "size_hw": [8, 8],
        "stride_hw": [2, 2],
        "offset_hw": [0.5, 0.5],
        "exact": True,
    }
    assert conv2["macs"] == 32 * 16 * 16 * 9 * 16 and conv2["activation_bytes"] == 4 * 32 * 16 * 16


def test_check_json_carries_expectation_failures(spec, capsys):
    assert main(["check", spec(NET + "expect macs < 10\n"), "--format", "json"]) == 1
    (d,) = json.loads(capsys.readouterr().out)["diagnostics"]
    assert set(d) >= {"severity", "code", "message", "file", "line", "column"} and d["line"] == 3


def test_check_text_table_has_the_new_columns(spec, capsys):
    assert main(["check", spec(NET)]) == 0
    out = capsys.readouterr().out
    assert "MACs" in out and "memory" in out and "RF /stride" in out and "global" in out and "8 /2" in out
