"""The ``--beam-model FILE`` option of the planning commands (particle machine data)."""
from __future__ import annotations

from pathlib import Path


def add_beam_model_argument(p) -> None:
    p.add_argument("--beam-model", type=Path, default=None, metavar="FILE",
                   help="particle beam model TOML: energies, in-air spot sigma at the isocentre, energy spread "
                        "(see docs/dose.md); default the shipped generic machine")


def beam_model_from_args(args):
    """The validated beam model of ``--beam-model`` (None when not given); a bad file is a
    BeamModelError (exit code 2) naming the file, the key and its line."""
    if getattr(args, "beam_model", None) is None:
        return None
    from ..dose.beam_model import load_beam_model

    return load_beam_model(args.beam_model)
