"""The pipeline service: versioned IR documents in the warehouse, a REST API, an MCP server and a canvas.

``core.PipelineService`` holds the operations (create, patch, validate, plan, run); ``api`` exposes them as REST
under ``/api/v1``, ``mcp`` as MCP tools, and ``static/`` is the canvas served at ``/``.
"""
