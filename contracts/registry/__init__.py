"""The patent registry: deposits, status, ownership, citations, appraisals, rights.

Other families read patents through this package's face (`registry.get_patent`,
`registry.is_active`, ...), never through its modules: `core` holds records and
reads, `patents` the deposit/status ops, `rights` assignment and pledges, `quality`
the derived quality score, `queries` the API reads.
"""

from __future__ import annotations

from contracts.registry.core import (
    APPLICATION_NO_RE, INACTIVE, KINDS, OFFICE_RE, PENDING, BadStatusTransition, DatesOutOfOrder,
    DuplicateDocument, NotOwner, PatentExists, PatentInactive, PatentPledged, check_shares,
    get_appraisal, get_block_date, get_effective_status, get_owners, get_patent, get_pledge,
    get_status, get_superseded_by, is_active, is_in_force, is_owner, is_pledged, parse_date,
    require_active, require_owner,
)
from contracts.registry.patents import (
    OPS, AlreadySuperseded, CitationExists, ConflictOfInterest,
)
from contracts.registry.queries import QUERIES

__all__ = [
    "APPLICATION_NO_RE", "INACTIVE", "KINDS", "OFFICE_RE", "PENDING", "BadStatusTransition",
    "DatesOutOfOrder", "DuplicateDocument", "NotOwner", "PatentExists", "PatentInactive",
    "PatentPledged", "check_shares", "get_appraisal", "get_block_date", "get_effective_status",
    "get_owners", "get_patent", "get_pledge", "get_status", "get_superseded_by", "is_active",
    "is_in_force", "is_owner", "is_pledged", "parse_date", "require_active", "require_owner",
    "OPS", "QUERIES", "AlreadySuperseded", "CitationExists", "ConflictOfInterest",
]
