"""Typed streaming calls from Python against the Rust job-queue example
(examples/job_queue.rs), through the client generated from its schema
(``generated/jobs.py``): follow a job's output, cancel a job by leaving its
call (the job's end pushed back shows the work stopped), a deadline, both
streams at once, and metadata that reaches the Rust handler."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from conftest import PATIENCE, JobsServer, run
from generated.jobs import Counted, EventEnded, JobsClient

from rust_tcp import CallError, CallStatus, RequestFailed

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def jobs() -> Iterator[JobsServer]:
    server = JobsServer()
    yield server
    server.stop()


def test_follow_a_job_then_cancel_one(jobs: JobsServer) -> None:
    async def body() -> None:
        async with await JobsClient.connect(jobs.addr, name="py-jobs") as client:
            events = client.events()
            job = await client.run(3, 1, window=2)
            assert [line async for line in job] == ["job line 0", "job line 1", "job line 2"]
            assert await asyncio.wait_for(events.__anext__(), PATIENCE) == EventEnded(id=0, how="finished")
            async with await client.run(1000, 1) as long:
                assert await long.__anext__() == "job line 0"
            # Leaving the block cancelled the call: the job's future was
            # dropped on the server, which says so.
            assert await asyncio.wait_for(events.__anext__(), PATIENCE) == EventEnded(id=1, how="cancelled")
            counted = await client.count(metadata={"traceparent": TRACEPARENT})
            assert counted == Counted(started=2, finished=1, cancelled=1, trace="0af7651916cd43dd8448eb211c80319c")

    run(body())


def test_a_deadline_stops_a_job_and_both_streams_work(jobs: JobsServer) -> None:
    async def body() -> None:
        async with await JobsClient.connect(jobs.addr) as client:
            events = client.events()
            slow = await client.run(1000, 50, deadline=0.12)
            with pytest.raises(CallError) as e:
                async for _ in slow:
                    pass
            assert e.value.status is CallStatus.DEADLINE_EXCEEDED
            assert await asyncio.wait_for(events.__anext__(), PATIENCE) == EventEnded(id=0, how="cancelled")
            upper = await client.upper()
            for word in ["follow", "cancel"]:
                await upper.send(word)
                assert await upper.__anext__() == word.upper()
            await upper.end()
            assert [x async for x in upper] == []
            # A unary call opened as a stream is refused by name.
            wrong = await client.typed.stream("Count")
            with pytest.raises((CallError, RequestFailed), match="`count` is a unary call"):
                await wrong.result()

    run(body())
