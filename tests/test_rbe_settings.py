"""RBE settings: defaults, validation, the protocol option rbe_proton, and the refusals (photons with an
RBE, carbon without one) through the API and the command line. No plan is optimized here."""
from __future__ import annotations

from pathlib import Path

import pytest

from phantoms.npc import make_npc_phantom
from reirrad_opt.cli import InputError, main as cli_main
from reirrad_opt.compare import compare
from reirrad_opt.planning import plan
from reirrad_opt.protocol import ProtocolError, load_protocol
from reirrad_opt.rbe import PROTON_RBE, prior_rbe_factor, resolve_rbe

SHIPPED = Path(__file__).resolve().parents[1] / "reirrad_opt" / "protocols" / "npc_reirradiation_2021.toml"


def _protocol_with(tmp_path: Path, line: str) -> Path:
    text = SHIPPED.read_text().replace("[options]\n", f"[options]\n{line}\n", 1)
    path = tmp_path / "protocol.toml"
    path.write_text(text)
    return path


def test_photons_are_physical_gy_and_protons_gy_rbe_at_1_1():
    photon = resolve_rbe("photon")
    assert photon.to_dict() == {"quantity": "physical", "unit": "Gy", "rbe": 1.0, "rbe_model": "none"}
    assert photon.notes() == []
    for name in ("proton", "particle"):
        proton = resolve_rbe(name)
        assert proton.to_dict() == {"quantity": "RBE-weighted", "unit": "Gy(RBE)", "rbe": 1.1, "rbe_model": "constant"}
    assert PROTON_RBE == 1.1
    assert "Gy(RBE) = 1.1 x physical dose" in resolve_rbe("proton").notes()[0]
    assert resolve_rbe("proton", 1.3).rbe == 1.3


@pytest.mark.parametrize("value", [0.3, 5.5, float("nan"), "high", True])
def test_rbe_outside_0_5_to_5_is_refused(value):
    with pytest.raises(InputError, match="--rbe"):
        resolve_rbe("proton", value)


def test_photon_with_an_rbe_is_refused():
    with pytest.raises(InputError, match="RBE 1 by definition"):
        resolve_rbe("photon", 1.0)


def test_carbon_without_rbe_is_refused_with_the_reason_and_with_one_is_stated_loudly():
    with pytest.raises(InputError, match=r"varies with LET.*(LEM|MKM).*--rbe"):
        resolve_rbe("carbon")
    carbon = resolve_rbe("carbon", 3.0)
    assert carbon.to_dict()["unit"] == "Gy(RBE)" and carbon.assumed_constant_for_ion
    warning = [n for n in carbon.notes() if n.startswith("WARNING")]
    assert len(warning) == 1 and "CONSTANT RBE of 3 was ASSUMED for carbon" in warning[0]


def test_protocol_option_rbe_proton(tmp_path):
    protocol = load_protocol(_protocol_with(tmp_path, "rbe_proton = 1.2"))
    setting = resolve_rbe("proton", None, protocol.options)
    assert setting.rbe == 1.2 and setting.source == "protocol option rbe_proton"
    assert resolve_rbe("proton", 1.05, protocol.options).rbe == 1.05      # --rbe wins over the protocol
    assert resolve_rbe("proton", None, load_protocol(None).options).rbe == 1.1
    with pytest.raises(ProtocolError, match=r"rbe_proton.*0.5 to 5"):
        load_protocol(_protocol_with(tmp_path, "rbe_proton = 7.0"))
    with pytest.raises(ProtocolError, match="rbe_proton"):
        load_protocol(_protocol_with(tmp_path, 'rbe_proton = "1.1"'))


def test_prior_rbe_factor_rules():
    assert prior_rbe_factor("photon", None, "x")[0] == 1.0
    assert prior_rbe_factor("proton", None, "x")[0] == 1.1
    assert prior_rbe_factor("helium", 1.4, "x")[0] == 1.4
    with pytest.raises(InputError, match="--prior-rbe"):
        prior_rbe_factor("carbon", None, "RD.dcm")


@pytest.fixture(scope="module")
def phantom():
    return make_npc_phantom(5.0)


def test_plan_and_compare_refuse_carbon_without_rbe_before_any_dose_calculation(phantom):
    with pytest.raises(InputError, match="LEM"):
        plan(phantom, None, modality="carbon")
    with pytest.raises(InputError, match="RBE 1 by definition"):
        plan(phantom, None, modality="photon", rbe=1.1)
    with pytest.raises(InputError, match="LEM"):
        compare(phantom, None, particle="carbon")


def test_cli_refusals_exit_2_with_the_reason(tmp_path, capsys):
    code = cli_main(["plan", "--phantom", "npc", "--resolution-mm", "5", "--modality", "carbon", "--quiet",
                     "--out", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code == 2 and "carbon plan without an RBE" in err and "LEM" in err
    code = cli_main(["plan", "--phantom", "npc", "--resolution-mm", "5", "--rbe", "1.1", "--quiet",
                     "--out", str(tmp_path / "p")])
    assert code == 2 and "--rbe" in capsys.readouterr().err
    code = cli_main(["compare", "--phantom", "npc", "--resolution-mm", "5", "--particle", "carbon", "--quiet",
                     "--out", str(tmp_path / "cmp")])
    assert code == 2 and "LEM" in capsys.readouterr().err
    assert not (tmp_path / "c").exists() and not (tmp_path / "cmp").exists()
