"""(stub) what is paid, refunded, credited and outstanding on a document."""

from __future__ import annotations
