"""Pydantic models of the OCPI 2.2.1 objects the hub receives (and the small ones it sends).

Objects the hub only sends from its own tables (Location, Session, CDR, Tariff) are served from their stored
OCPI ``data``; these models validate what partners send in.
"""
