"""settlement — period settlement: splits every CDR's money among CPO, eMSP, hub and partners."""
