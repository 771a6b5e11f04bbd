"""Not code: this file lets `pip install` ship the packs in this folder as package data (`crmrules._packs`).

`crmrules serve` with no crmrules.yaml, `crmrules demo` and `shipped:*` in `rules:` read the installed copy.
"""
