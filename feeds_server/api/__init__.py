"""HTTP API: thin Starlette routes, one module per resource."""
