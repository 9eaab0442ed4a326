"""Invariant property tests of the money path (issue 12, item 6): one module per property."""
