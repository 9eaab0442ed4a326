"""Typed models of the hub's domain objects as they cross its edges (files, CLI, API), validated with pydantic.

They follow OCPI 2.2.1 field names so an OCPI object can be imported as is; :mod:`evhub.provisioning` turns
them into rows of :mod:`kernel.models`.
"""
