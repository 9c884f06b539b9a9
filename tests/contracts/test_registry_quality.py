"""Simple families and the five-dimension quality score, derived from the chain only.

Reference: specs/contracts.md, "Registry": families; quality score (the 2021 blockchain
patent quality report's five dimensions, 20 points each).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.genesis import DEFAULT_CONTRACT_CONFIG
from contracts.registry.quality import (
    compute_band_points, compute_family_key, compute_quality, is_base_technology,
)

from contract_chain import Chain, new_chain

CN_FIRST = {"number": "100", "date": "2022-04-01", "office": "CN"}


def family_of(chain: Chain, offices: list[str], priority: dict = CN_FIRST) -> list[str]:
    return [chain.deposit("acme", f"F{i}", office=office, filing_date="2023-03-01",
                          priorities=[priority])
            for i, office in enumerate(offices)]


@pytest.mark.parametrize("value,points", [(0, 0), (1, 5), (2, 5), (3, 10), (5, 10), (6, 15),
                                          (10, 15), (11, 20), (500, 20)])
def test_citation_bands(value, points):
    assert compute_band_points(value, DEFAULT_CONTRACT_CONFIG["citation_bands"]) == points


@pytest.mark.parametrize("value,points", [(0, 0), (1, 0), (2, 5), (3, 10), (4, 10), (5, 15),
                                          (9, 15), (10, 20)])
def test_family_bands(value, points):
    assert compute_band_points(value, DEFAULT_CONTRACT_CONFIG["family_bands"]) == points


@pytest.mark.parametrize("bands,value,points", [
    ([[0, 99]], 5, 20),
    ([[0, -7]], 5, 0),
    ([[3, 10]], 2, 0),
])
def test_band_points_are_clamped_to_a_dimension(bands, value, points):
    assert compute_band_points(value, bands) == points


@pytest.mark.parametrize("ipc,expected", [
    (["H04L 9/32"], True),
    (["h04l9/00"], True),
    (["G06F 21/64", "A01B 1/00"], True),
    (["H04L9"], True),
    (["H04L 91/00"], False),
    (["H04L 12/00"], False),
    ([], False),
])
def test_underlying_technology_matches_whole_main_groups(ipc, expected):
    assert is_base_technology(ipc, ["G06F21", "H04L9"]) is expected


def test_a_first_filing_and_the_filings_claiming_it_form_one_family(chain):
    first = chain.deposit("acme", "100", filing_date="2022-04-01")
    members = family_of(chain, ["US", "EP", "JP"])
    other = chain.deposit("acme", "200", filing_date="2022-04-01")
    family = chain.query("families", first)
    assert family["members"] == sorted([first, *members])
    assert (family["size"], family["offices"]) == (4, ["CN", "EP", "JP", "US"])
    assert chain.query("families", other)["size"] == 1
    quality = chain.query("quality", first)
    assert (quality["family"], quality["international"]) == (10, 20)


def test_a_different_set_of_priorities_is_a_different_family(chain):
    both = [CN_FIRST, {"number": "101", "date": "2022-05-01", "office": "CN"}]
    a = chain.deposit("acme", "A", office="US", priorities=both)
    b = chain.deposit("acme", "B", office="EP", priorities=list(reversed(both)))
    c = chain.deposit("acme", "C", office="JP", priorities=[CN_FIRST])
    assert chain.query("families", a)["members"] == [b, a]
    assert chain.query("families", c)["members"] == [c]


def test_family_key_ignores_priority_order_but_not_content():
    base = {"priorities": [CN_FIRST, {"number": "7", "date": "2022-01-01", "office": "US"}],
            "application_no": "x", "filing_date": "2023-01-01", "office": "EP"}
    swapped = {**base, "priorities": list(reversed(base["priorities"]))}
    changed = {**base, "priorities": [CN_FIRST]}
    assert compute_family_key(base) == compute_family_key(swapped) != compute_family_key(changed)


def test_a_superseded_record_leaves_its_family(chain):
    members = family_of(chain, ["US", "EP"])
    chain.must("acme", "patent.deposit", office="EP", application_no="F1b",
               doc_hash="ab" * 32, supersedes=members[1],
               meta={"title": "t", "kind": "invention", "filing_date": "2023-03-01",
                     "priorities": [CN_FIRST]})
    assert chain.query("families", members[0])["members"] == ["EP:F1b", members[0]]


@pytest.mark.parametrize("status_path,points", [
    ([], 10), (["PUBLISHED"], 10), (["PUBLISHED", "GRANTED"], 20),
    (["PUBLISHED", "GRANTED", "LAPSED"], 0), (["REJECTED"], 0),
])
def test_authorization_points(chain, status_path, points):
    pid = chain.deposit("acme", "1")
    for status in status_path:
        chain.must("cnipa", "patent.set_status", patent=pid, status=status)
    assert chain.query("quality", pid)["authorization"] == points


def test_forward_citations_raise_the_score(chain):
    cited = chain.deposit("acme", "1", filing_date="2020-01-01")
    scores = [chain.query("quality", cited)["citations"]]
    for i in range(11):
        citing = chain.deposit("bolt", f"C{i}")
        chain.must("cnipa", "patent.cite", citing=citing, cited=cited)
        scores.append(chain.query("quality", cited)["citations"])
    assert scores == [0, 5, 5, 10, 10, 10, 15, 15, 15, 15, 15, 20]


def test_a_granted_well_cited_international_base_patent_scores_100(chain):
    first = chain.grant(chain.deposit("acme", "100", filing_date="2022-04-01",
                                      ipc=["G06F 21/64"]))
    family_of(chain, ["US", "EP", "JP", "KR", "DE", "GB", "FR", "IN", "BR"])
    for i in range(11):
        chain.must("cnipa", "patent.cite", citing=chain.deposit("bolt", f"C{i}"), cited=first)
    assert chain.query("quality", first) == {"score": 100, "authorization": 20,
                                             "citations": 20, "technology": 20,
                                             "family": 20, "international": 20}


# -- properties ------------------------------------------------------------------------------

bands = st.lists(st.lists(st.integers(-30, 40), min_size=2, max_size=2), max_size=6)


@settings(max_examples=30, deadline=None)
@given(citation_bands=bands, family_bands=bands, international_bands=bands,
       citations=st.integers(0, 12), offices=st.lists(st.sampled_from(["US", "EP", "JP", "CN"]),
                                                      max_size=6),
       ipc=st.lists(st.sampled_from(["H04L 9/32", "A01B 1/00", "G06F 21/10"]), max_size=3),
       path=st.sampled_from([[], ["PUBLISHED"], ["PUBLISHED", "GRANTED"], ["REJECTED"],
                             ["PUBLISHED", "GRANTED", "INVALIDATED"]]))
def test_quality_score_is_always_within_0_and_100(citation_bands, family_bands,
                                                  international_bands, citations, offices,
                                                  ipc, path):
    chain = new_chain(contracts={"citation_bands": citation_bands, "family_bands": family_bands,
                                 "international_bands": international_bands})
    pid = chain.deposit("acme", "100", filing_date="2022-04-01", ipc=ipc)
    family_of(chain, offices)
    for status in path:
        chain.must("cnipa", "patent.set_status", patent=pid, status=status)
    for i in range(citations):
        chain.must("cnipa", "patent.cite", citing=chain.deposit("bolt", f"C{i}"), cited=pid)
    quality = compute_quality(chain.state, pid, chain.timestamp_ms)
    parts = [v for k, v in quality.items() if k != "score"]
    assert len(parts) == 5 and all(0 <= p <= 20 for p in parts)
    assert quality["score"] == sum(parts) and 0 <= quality["score"] <= 100
    assert (quality["technology"] == 20) == any(s != "A01B 1/00" for s in ipc)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.sampled_from(["cite", "family", "grant"]), max_size=12))
def test_with_ascending_bands_more_evidence_never_lowers_the_score(steps):
    chain = new_chain()
    pid = chain.deposit("acme", "100", filing_date="2022-04-01")
    score, granted = chain.query("quality", pid)["score"], False
    for i, step in enumerate(steps):
        if step == "cite":
            chain.must("cnipa", "patent.cite", citing=chain.deposit("bolt", f"C{i}"), cited=pid)
        elif step == "family":
            chain.deposit("acme", f"F{i}", office="US", priorities=[CN_FIRST])
        elif not granted:
            chain.grant(pid)
            granted = True
        new_score = chain.query("quality", pid)["score"]
        assert new_score >= score
        score = new_score
