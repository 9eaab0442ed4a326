"""The OCPI modules, each one file: the hub's CPO side of the interface."""
