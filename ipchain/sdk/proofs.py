"""Offline proof checking: a thin call into the project's verifier (node/proofs.py), so
the SDK follows the proof format wherever the verifier takes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def load_genesis(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def verify_proof(proof: dict[str, Any], genesis: dict[str, Any]) -> dict[str, Any]:
    """The verifier's summary if the proof holds against `genesis`; raises if not."""
    from node.proofs import verify_proof as verify  # the one verifier the CLI also uses

    return verify(proof, genesis)
