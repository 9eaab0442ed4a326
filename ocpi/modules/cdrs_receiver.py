"""CDRs, Receiver interface of the hub's hosted eMSPs, for external CPO partners (OCPI 2.2.1, issue 14 item 4):
``POST /ocpi/emsp/2.2.1/cdrs`` (a new CDR) and ``GET`` of the URL the POST answered in ``Location``
(``/ocpi/emsp/2.2.1/cdrs/{id}``, the hub's id of the stored CDR; OCPI leaves its form to the Receiver).

Who may call is :mod:`ocpi.emsp_caller`'s rule (a CPO partner from one of its CPO roles to a hosted eMSP). What
is stored, once, and refused is :mod:`ocpi.received_cdrs`'s. Answers:

* a new CDR: HTTP 201 (the spec's "newly created"), OCPI 1000, ``Location``; the same CDR again: HTTP 200,
  1000, the same ``Location`` (stored once);
* a body that is not JSON, not a CDR object, or a CDR the hub refuses: 2001 with the reason (HTTP 400);
  a token the addressed eMSP does not have: 2004 (HTTP 400), nothing stored; never a 500 for bad input;
* GET: the stored CDR (the CPO's object, projected onto the OCPI 2.2.1 CDR properties), only to the CPO role
  that posted it and to the eMSP of its token; any other caller, or an unknown id, HTTP 404 / 2000.

Paths are taken with or without a trailing slash.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from kernel.validation import ascii_int
from ocpi import status
from ocpi.deps import read_json
from ocpi.emsp_caller import CpoCaller, cpo_caller
from ocpi.envelope import NotFound, OcpiError, OcpiResponse, envelope
from ocpi.platform import VERSION
from ocpi.received_cdrs import receive_cdr, received_for
from ocpi.render_objects import cdr_object
from ocpi.schemas.cdrs import OcpiCdr
from ocpi.versions import emsp_module_url

router = APIRouter()


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'CDR'}: {e['msg']}" for e in exc.errors()[:5])


@router.post("")
@router.post("/")
async def post_cdr(request: Request, c: CpoCaller = Depends(cpo_caller)) -> OcpiResponse:
    raw = await read_json(request, exact=True)
    if not isinstance(raw, dict):
        raise OcpiError(status.INVALID_PARAMETERS, "Request body must be a CDR object")
    try:
        body = OcpiCdr.model_validate(raw)
    except ValidationError as exc:
        raise OcpiError(status.INVALID_PARAMETERS, f"Invalid CDR: {_problems(exc)}") from None
    received = await receive_cdr(c.db_session, c.partner, c.role, c.emsps[0], body, raw)
    location = f"{emsp_module_url(c.platform, 'cdrs', VERSION)}/{received.cdr.id}"
    return OcpiResponse(
        envelope(), status_code=201 if received.created else 200, headers={"Location": location}
    )


@router.get("/{cdr_ref}")
@router.get("/{cdr_ref}/")
async def get_cdr(cdr_ref: str, c: CpoCaller = Depends(cpo_caller)) -> OcpiResponse:
    pk = ascii_int(cdr_ref, minimum=1)
    cdr = await received_for(c.db_session, c.role, c.emsp_ids, pk) if pk is not None else None
    if cdr is None:
        raise NotFound(f"Unknown CDR {cdr_ref}")
    return OcpiResponse(envelope(cdr_object(cdr)), status_code=200)
