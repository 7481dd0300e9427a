"""The HTTP edge: one module per resource, each with its own RouteTableDef."""
