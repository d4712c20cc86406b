"""The turns of an instance whose governance policy makes tool calls wait for approval (runtime.approvals.policy).

Such a turn runs the instance graph compiled with the store's own checkpointer, under a run id of its own (never
the thread's key: the thread's history is a checkpoint of its own, runtime.store.memory), with `durability="exit"`: the
graph's state is written once, when it stops, so a turn that needs no approval costs one write and one delete.
A turn that stopped on an interrupt keeps its checkpoint and gets one approval record per interrupt; any task can
then resume it with `Command(resume=...)` while holding the thread's turn (runtime.store.thread_turns).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

from langgraph.types import Command

from runtime.approvals.policy import ApprovalPolicy, ApprovalRequest, approval_id
from runtime.graph import Graph
from runtime.state import PipelineState
from runtime.store.approval_store import ApprovalRecord, Approvals
from runtime.store.thread_leases import ThreadOwner

log = logging.getLogger(__name__)


class PausedTurns:
    def __init__(
        self,
        graph: Graph,
        approvals: Approvals,
        saver: Any,
        policy: ApprovalPolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.graph = graph
        self.approvals = approvals
        self._saver = saver
        self.policy = policy
        self._clock = clock

    async def run(self, request: PipelineState, owner: ThreadOwner) -> PipelineState:
        """One turn; the caller holds the thread's turn. A paused turn's state carries `approvals`."""
        run_id = f"run-{uuid.uuid4().hex}"
        state = await self.graph.ainvoke(request, {"configurable": {"thread_id": run_id}}, durability="exit")
        return await self._settle(cast(dict[str, Any], state), run_id, request["thread_id"], request["trace_id"], owner)

    async def resume(self, record: ApprovalRecord, command: Command[Any]) -> PipelineState:
        """Resumes a paused turn from its checkpoint; the caller holds the thread's turn."""
        config: Any = {"configurable": {"thread_id": record.run_id}}
        state = await self.graph.ainvoke(command, config, durability="exit")
        owner = ThreadOwner(record.organization, record.subject, record.thread)
        return await self._settle(cast(dict[str, Any], state), record.run_id, record.thread_key, record.trace_id, owner)

    async def _settle(
        self, state: dict[str, Any], run_id: str, thread_key: str, trace_id: str, owner: ThreadOwner
    ) -> PipelineState:
        """A finished turn's checkpoint goes; a paused one's stays, with its approvals recorded."""
        interrupts = state.pop("__interrupt__", None) or []
        if not interrupts:
            await self._saver.adelete_thread(run_id)
            return cast(PipelineState, state)
        now = self._clock()
        requests: list[dict[str, Any]] = []
        for each in interrupts:
            asked = dict(each.value)
            record = ApprovalRecord(
                id=approval_id(run_id, each.id),
                organization=owner.organization,
                subject=owner.subject,
                thread=owner.thread,
                thread_key=thread_key,
                run_id=run_id,
                interrupt_id=each.id,
                agent_id=str(asked["agent_id"]),
                tool=str(asked["tool"]),
                arguments=dict(asked["arguments"]),
                trace_id=trace_id,
                created_at=now,
                expires_at=now + self.policy.timeout_seconds,
            )
            await self.approvals.add(record)
            event = {"event": "approval.requested", "approval_id": record.id, "tool": record.tool, "trace_id": trace_id}
            log.info(json.dumps(event))  # names no caller and no arguments: they may be personal data
            kept = await self.approvals.get(record.id) or record  # one asked again on resume keeps its first form
            requests.append(ApprovalRequest.of(kept).model_dump(mode="json"))
        state["approvals"] = requests
        return cast(PipelineState, state)
