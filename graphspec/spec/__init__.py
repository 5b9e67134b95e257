"""The spec format, pure data: YAML with positions, params, pydantic models, catalog checks."""
