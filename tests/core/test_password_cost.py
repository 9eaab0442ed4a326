"""The hub hashes passwords with Argon2id at a real cost, although the suite runs with a cheap hasher.

tests/conftest.py swaps :data:`kernel.security._hasher` for :data:`tests.conftest.TEST_HASHER` (Argon2id, cheapest
parameters) so that provisioning chargers and managers does not dominate the suite's time; this test holds the
product's own hasher to the cost it ships with.
"""

from __future__ import annotations

import kernel.security
from tests.conftest import PRODUCT_HASHER, TEST_HASHER


def test_the_hub_hashes_with_argon2id_at_rfc_9106_cost() -> None:
    """Issue 11 (test speed): the product hasher is argon2-cffi's RFC 9106 low-memory profile (t=3, 64 MiB,
    p=4), its hashes say so, and a hash of the suite's cheap hasher counts as one to re-hash."""
    assert (PRODUCT_HASHER.time_cost, PRODUCT_HASHER.memory_cost, PRODUCT_HASHER.parallelism) == (3, 65536, 4)
    strong = PRODUCT_HASHER.hash("a-long-secret")
    assert strong.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert PRODUCT_HASHER.verify(strong, "a-long-secret")
    assert PRODUCT_HASHER.check_needs_rehash(TEST_HASHER.hash("a-long-secret"))


def test_the_suite_uses_the_cheap_hasher_through_the_product_functions() -> None:
    """Issue 11 (test speed): kernel.security's functions run on the suite's hasher, still Argon2id."""
    assert kernel.security._hasher is TEST_HASHER
    cheap = kernel.security.hash_password("a-long-secret")
    assert cheap.startswith("$argon2id$") and kernel.security.verify_password(cheap, "a-long-secret")
    assert not kernel.security.verify_password(cheap, "another")
