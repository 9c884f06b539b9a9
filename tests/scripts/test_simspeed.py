"""simspeed: this tree's simulator against the first version's, each running its own code."""

from __future__ import annotations

import json

import pytest

from ipchain.workloads import simspeed


def test_both_sides_run_their_own_code_and_a_ratio_comes_out(tmp_path) -> None:
    """Against this checkout's own HEAD (present in any clone, a shallow one too): the
    benchmark's mechanics, not the first version's figure, are what a test can check."""
    out = tmp_path / "simspeed.json"
    assert simspeed.main(["--pairs", "1", "--seeds", "2", "--reference", "HEAD",
                          "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    (pair,) = result["pairs"]
    for side in ("tree", "reference"):
        assert pair[side]["cpu_seeds_per_min"] > 0
        assert pair[side]["violations"] == 0 and pair[side]["failing_seeds"] == 0
        assert pair[side]["blocks_per_seed_avg"] > 0
    ratio = pair["tree"]["cpu_seeds_per_min"] / pair["reference"]["cpu_seeds_per_min"]
    assert pair["ratio"] == pytest.approx(ratio, abs=1e-3)
    assert result["at_reference_speed"] == pytest.approx(result["ratio_median"] * 750, abs=0.1)
    assert result["met"] == (result["at_reference_speed"] >= 1_000)


def test_an_unknown_reference_is_refused_clearly(tmp_path) -> None:
    with pytest.raises(SystemExit, match="not in .* history"):
        simspeed.export_reference("0" * 40, tmp_path)


def test_a_child_that_imports_another_tree_is_refused(tmp_path) -> None:
    """A tree without `node` of its own: the child finds the installed one and stops,
    rather than measure code other than the tree's (session 7's PYTHONPATH bug)."""
    (tmp_path / "scripts").mkdir()
    with pytest.raises(SystemExit, match="node imported from .*, not from"):
        simspeed.run_sim(tmp_path, 1)
