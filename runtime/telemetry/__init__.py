"""What a turn reports besides its answer: OpenTelemetry traces and metrics (`provider`, `telemetry_settings`,
`instruments`, `genai_spans`, `trace_context`), its usage tally (`usage_tally`) and its progress to a caller that
asked for it (`turn_progress`).

The floor of the runtime: imports nothing of `runtime`.
"""
