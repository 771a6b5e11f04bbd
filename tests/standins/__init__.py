"""Local test stand-ins for the CRM REST APIs (HubSpot, Salesforce).

These are NOT the vendors' services: they are small in-memory Flask apps that
answer the endpoints our adapters use, shaped after the vendors' published REST
references, so tests can drive the real client libraries over loopback HTTP.

This file also makes ``tests/standins`` a package, which matters: without it
pytest would put this folder on ``sys.path`` and ``hubspot.py`` here would
shadow the real ``hubspot`` client package.
"""
