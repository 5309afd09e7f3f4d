"""The routers of the /v1 service, one module per resource."""
