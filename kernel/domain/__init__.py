"""Typed models of the hub's domain objects as they cross its edges (files, CLI, API, OCPI), validated with
pydantic.

They follow OCPI 2.2.1 field names so an OCPI object can be imported as is; :mod:`evhub.provisioning` and the
OCPI modules turn them into rows of :mod:`kernel.models`, pricing and OCPI render the CDR's token with
:mod:`kernel.domain.cdr_token`.
"""
