"""Pagination as EC2 answers it: MaxResults, NextToken, InvalidPaginationToken.

Owns: ``paginate`` (a page of a listing ordered by ID, and the token for the
next one), the opaque, deterministic tokens bound to their query
(``query_digest``), and the refusal of a bad or foreign token.

Leaves to others: each action's own MaxResults range and which parameters
make a query (describe.py for DescribeImages, deregistration.py for
ListImagesInRecycleBin).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from moto.ec2.exceptions import EC2ClientError

# Page size when NextToken comes without MaxResults (emulator's choice).
DEFAULT_PAGE_SIZE = 1000


def _pagination_token(after: str, query: str) -> str:
    # Opaque to clients: the last ID of the page and a digest of the query it
    # belongs to. Deterministic, so the same query at the same position always
    # gets the same token, and a page boundary survives images being added or
    # removed between calls (the listing is ordered by image ID).
    raw = json.dumps({"v": 1, "after": after, "q": query}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def query_digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _token_position(token: str, query: str) -> str:
    """The last image ID before the page the token asks for.

    AWS (EC2 common client errors): "InvalidPaginationToken: The specified
    pagination token is not valid or is expired." A token that does not
    decode, or that was issued for another query, is refused that way.
    """
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after = data["after"]
        if data.get("v") != 1 or data.get("q") != query or not isinstance(after, str):
            raise ValueError
        return after
    except Exception:
        raise EC2ClientError(
            "InvalidPaginationToken", "The specified pagination token is not valid or is expired."
        ) from None


def paginate(items: list[Any], key: Any, max_results: int | None, token: str | None,
             query: str) -> tuple[list[Any], str | None]:
    items = sorted(items, key=key)
    if token:
        after = _token_position(token, query)
        items = [i for i in items if key(i) > after]
    if max_results is None and not token:
        return items, None
    size = max_results if max_results is not None else DEFAULT_PAGE_SIZE
    page = items[:size]
    if len(items) > size:
        return page, _pagination_token(key(page[-1]), query)
    return page, None
