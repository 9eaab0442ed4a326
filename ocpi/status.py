"""OCPI 2.2.1 status codes (the ``status_code`` of every response envelope)."""

from __future__ import annotations

SUCCESS = 1000

CLIENT_ERROR = 2000
INVALID_PARAMETERS = 2001
NOT_ENOUGH_INFORMATION = 2002
UNKNOWN_LOCATION = 2003
UNKNOWN_TOKEN = 2004

SERVER_ERROR = 3000
UNABLE_TO_USE_CLIENT_API = 3001
UNSUPPORTED_VERSION = 3002
NO_MATCHING_ENDPOINTS = 3003

HUB_ERROR = 4000
UNKNOWN_RECEIVER = 4001
FORWARD_TIMEOUT = 4002
CONNECTION_PROBLEM = 4003

MESSAGES = {
    SUCCESS: "Success",
    CLIENT_ERROR: "Generic client error",
    INVALID_PARAMETERS: "Invalid or missing parameters",
    NOT_ENOUGH_INFORMATION: "Not enough information",
    UNKNOWN_LOCATION: "Unknown Location",
    UNKNOWN_TOKEN: "Unknown Token",
    SERVER_ERROR: "Generic server error",
    UNABLE_TO_USE_CLIENT_API: "Unable to use the client's API",
    UNSUPPORTED_VERSION: "Unsupported version",
    NO_MATCHING_ENDPOINTS: "No matching endpoints or expected endpoints missing between parties",
    HUB_ERROR: "Generic hub error",
    UNKNOWN_RECEIVER: "Unknown receiver",
    FORWARD_TIMEOUT: "Timeout on forwarded request",
    CONNECTION_PROBLEM: "Connection problem",
}
