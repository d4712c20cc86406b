"""The agents of the pipeline, one module per concern. Each node is a callable returning a partial state update."""
