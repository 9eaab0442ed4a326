"""Texts in bulk with Arrow: the JSON of many values, columns of texts joined row by row, spans of the result.

The bulk path (:mod:`billing.core.bulk`) writes millions of invoice lines a month. Assembling each line with a
Python f-string cost ~3 µs a line and encoding each distinct value ~2 µs; here every step is one Arrow compute
call over a whole column (C++, the GIL released), and the values are turned into JSON exactly as
``json.dumps`` (``ensure_ascii``) writes them: a text that is printable ASCII without ``"`` or ``\\`` is
quoted as it is (checked by one regular expression over the column), any other goes through
:func:`json.encoder.encode_basestring_ascii` one by one; None is ``null``; a tuple is a JSON array.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_PLAIN = r"^[\x20\x21\x23-\x5b\x5d-\x7e]*$"
"""Texts whose JSON is the text in quotes: printable ASCII but ``"`` and ``\\``."""


def texts(values: Sequence[str | None]) -> pa.Array:
    """``values`` as an Arrow text array (None: null), with 64-bit offsets: a chunk's lines, or one large
    fleet's invoice, may pass the 2 GB that 32-bit offsets address."""
    return pa.array(values, type=pa.large_string())


def json_texts(values: Sequence[Any]) -> pa.Array:
    """The JSON of each of ``values`` as ``json.dumps`` writes it: texts, None (``null``) or tuples of texts
    (arrays, ``", "`` between items)."""
    try:
        column = texts(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all texts: tuples
        return texts(["null" if v is None else _json(v) for v in values])
    quoted = joined(['"', column, '"'])
    plain = pc.fill_null(pc.match_substring_regex(column, _PLAIN), True)
    if not pc.all(plain).as_py():
        odd = np.flatnonzero(~plain.to_numpy(zero_copy_only=False))
        quoted = pc.replace_with_mask(
            quoted,
            pc.invert(plain),
            texts([encode_basestring_ascii(values[i]) for i in odd.tolist()]),
        )
    return pc.fill_null(quoted, "null")


def _json(value: Any) -> str:
    if isinstance(value, str):
        return encode_basestring_ascii(value)
    return json.dumps(list(value))


def taken(dictionary: pa.Array | Sequence[str], index: np.ndarray) -> pa.Array:
    """``dictionary[index]`` for each row (``index`` int64, every value in range)."""
    column = dictionary if isinstance(dictionary, pa.Array) else texts(dictionary)
    return column.take(pa.array(np.asarray(index, dtype=np.int64)))


def joined(pieces: Sequence[pa.Array | str]) -> pa.Array:
    """Each row's pieces (a column of texts, one per row, or one text for every row), in order, as one text."""
    return pc.binary_join_element_wise(*(_large(p) for p in pieces), _large(""))


def _large(piece: pa.Array | str) -> pa.Array | pa.Scalar:
    if isinstance(piece, str):
        return pa.scalar(piece, pa.large_string())
    return piece if pa.types.is_large_string(piece.type) else piece.cast(pa.large_string())


def spans(column: pa.Array, bounds: Sequence[int]) -> list[str]:
    """The texts of rows ``bounds[i]:bounds[i + 1]``, concatenated, for each ``i`` (ASCII texts): slices of
    the column's one buffer, with nothing built per row."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    _, offsets_buffer, data = column.buffers()
    kind = np.int64 if pa.types.is_large_string(column.type) else np.int32
    offsets = np.frombuffer(offsets_buffer, dtype=kind)[column.offset : column.offset + len(column) + 1]
    at = offsets[np.asarray(bounds, dtype=np.int64)].tolist()
    view = memoryview(data) if data is not None else memoryview(b"")
    return [str(view[a:b], "ascii") for a, b in itertools.pairwise(at)]
