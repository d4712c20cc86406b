"""The instance's own store, the one STATE_URL names (a SQLite file, a DynamoDB table, or memory), opened whole by
`thread_store`: the threads' history (`memory`, on the checkpointers of `thread_savers`), one turn per thread
(`thread_leases`, `thread_turns`), approval records (`approval_store`), the usage ledger (`usage_ledger`), and
data-subject requests over all of it (`subject_data`).

May import `runtime.auth`, `runtime.config`, `runtime.state_url` and `runtime.telemetry`.
"""
