"""Not code: this file lets `pip install` ship the demo events as package data (`crmrules._demo`) for `crmrules demo`."""
