"""Tool calls that wait for a person: the governance policy's rule and the interrupt a worker raises (`policy`),
and the logic of the approval tools (`approval_desk`). The records live in `runtime.store.approval_store`, the
paused turns run in `runtime.paused_turns`, inline approval is `runtime.edge.inline_approval`.

May import `runtime.store`, `runtime.auth` and `runtime.config`.
"""
