"""A protocol's numbers are read only when they are plausible: a typo in a unit or a decimal point (a brainstem
limit of 70000 Gy, a slip of 500 %) is refused naming the file, the key and the bound, never planned with. Such
a protocol used to plan to a DESIRABLE verdict with the brainstem at 107 Gy."""
from __future__ import annotations

import pytest

from reirrad_opt.protocol import ProtocolError, load_protocol

SHIPPED = load_protocol(None).path.read_text()


@pytest.mark.parametrize("old, new, words", [
    ('desirable = "70.2 Gy"', 'desirable = "70200 Gy"', ["Brainstem_D0.03cc", "line 84", "70200 Gy", "200 Gy"]),
    ('desirable = "98 %Rx"', 'desirable = "9800 %Rx"', ["rGTV_D98%", "9800 %Rx", "200 %"]),
    ('1 = "1 %"', '1 = "500 %"', ["[slips] 1", "line 66", "500 % of Rx", "at most 20 % of Rx"]),
    ('1 = "1 %"', '1 = "65 Gy"', ["[slips] 1", "65 Gy", "at most 10 Gy"]),
    ("eqd2_gy = 60.0", "eqd2_gy = 6000.0", ["[prescription] eqd2_gy", "line 23", "6000 Gy", "eqd2_range_gy 60-66 Gy"]),
    ("max_dose_pct_rx = 115.0", "max_dose_pct_rx = 5000.0", ["max_dose_pct_rx", "line 60", "from 100 to 200 % of Rx"]),
    ("max_dose_pct_rx = 115.0", "max_dose_pct_rx = 90.0", ["max_dose_pct_rx", "from 100 to 200 % of Rx"]),
])
def test_an_implausible_number_is_refused_naming_the_key_and_the_bound(tmp_path, old, new, words):
    assert SHIPPED.count(old) >= 1
    path = tmp_path / "typo.toml"
    path.write_text(SHIPPED.replace(old, new, 1))
    with pytest.raises(ProtocolError) as info:
        load_protocol(path)
    assert str(path) in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_the_bounds_leave_real_limits_alone(tmp_path):
    path = tmp_path / "high.toml"
    # a carotid-like cumulative limit above the consensus's 125 Gy, a ceiling of 200 %, a slip of 2 Gy: unusual, legal
    path.write_text(SHIPPED.replace('desirable = "70.2 Gy"\nacceptable = "81 Gy"',
                                    'desirable = "150.5 Gy"\nacceptable = "190 Gy"', 1)
                    .replace("max_dose_pct_rx = 115.0", "max_dose_pct_rx = 200.0").replace('1 = "1 %"', '1 = "2 Gy"'))
    p = load_protocol(path)
    assert p.goals[0].desirable.value == 150.5 and p.options["max_dose_pct_rx"] == 200.0
    assert p.slips[1].to_gy(60.0) == 2.0


@pytest.mark.parametrize("options, words", [
    ({"max_dose_pct_rx": 5000.0}, ["given by the caller", "max_dose_pct_rx", "from 100 to 200 % of Rx"]),
    ({"evaluation_fine_factor": 100}, ["given by the caller", "evaluation_fine_factor", "to 6"]),
    ({"rbe_proton": 11.0}, ["given by the caller", "rbe_proton", "0.5 to 5"]),
])
def test_options_given_by_the_caller_are_checked_as_the_files_are(options, words):
    """A study's options.NAME and load_protocol(options=...) used to be checked only for their choice words."""
    with pytest.raises(ProtocolError) as info:
        load_protocol(None, options=options)
    for word in words:
        assert word in str(info.value)
