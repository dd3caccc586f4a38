"""The shared argparse type functions: accepted values, and refusals that name value and option."""
from __future__ import annotations

import argparse

import pytest

from reirrad_opt.commands._args import (
    fraction,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)


def test_accepted_values():
    assert positive_float("2.5") == 2.5
    assert positive_int("7") == 7
    assert non_negative_float("0") == 0.0
    assert non_negative_int("0") == 0
    assert fraction("1") == 1.0


@pytest.mark.parametrize(
    "func, text, expected",
    [
        (positive_float, "0", "expected a number > 0"),
        (positive_float, "-1.5", "expected a number > 0"),
        (positive_float, "nan", "finite"),
        (positive_float, "abc", "expected a number > 0"),
        (positive_int, "0", "positive whole number"),
        (positive_int, "2.5", "positive whole number"),
        (non_negative_float, "-0.1", "expected a number >= 0"),
        (non_negative_int, "-1", "whole number >= 0"),
        (fraction, "1.5", "from 0 to 1"),
    ],
)
def test_refusals_name_value_and_expectation(func, text, expected):
    with pytest.raises(argparse.ArgumentTypeError) as info:
        func(text)
    assert repr(text) in str(info.value)
    assert expected in str(info.value)


def test_argparse_names_the_option(capsys):
    parser = argparse.ArgumentParser(prog="x")
    parser.add_argument("--beams", type=positive_int)
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["--beams", "0"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --beams: invalid value '0'" in err
