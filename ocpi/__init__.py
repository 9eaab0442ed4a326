"""ocpi — the OCPI 2.2.1 platform carrying a CPO role for every CPO the hub hosts."""
