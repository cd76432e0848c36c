"""The parent's stream sink: chunks keep their order across threads, a sleeping consumer
is always woken (never lost), and a dispatcher pass wakes it once, not once per chunk."""

from __future__ import annotations

import asyncio
import sys
import threading
import time

from paralleltask import _stream, entrypoint, task
from paralleltask._stream import StreamSink, hold_wakeups, release_wakeups, wake_held


def _count_wakes(sink: StreamSink) -> list[int]:
    wakes = [0]
    wake = sink._wake

    def counting() -> None:
        wakes[0] += 1
        wake()

    sink._wake = counting
    return wakes


def test_chunks_arrive_in_emit_order_then_end():
    sink = StreamSink(("updates", "custom"))
    sink.emit("updates", {"a": 1})
    sink.emit("values", 99)  # not streamed: dropped
    sink.emit("custom", "x")
    sink.end()
    assert list(sink.chunks(single=False, version="v1")) == [("updates", {"a": 1}), ("custom", "x")]


def test_a_chunk_emitted_after_the_end_is_not_yielded():
    sink = StreamSink(("custom",))
    sink.emit("custom", "before")
    sink.end()
    sink.emit("custom", "late")  # a stopped call's event, after the run ended
    assert list(sink.chunks(single=True, version="v1")) == ["before"]


def test_single_mode_v1_chunks_are_bare_and_v2_chunks_are_dicts():
    bare, tagged = StreamSink(("updates",)), StreamSink(("updates",))
    for sink in (bare, tagged):
        sink.emit("updates", {"a": 1})
        sink.end()
    assert list(bare.chunks(single=True, version="v1")) == [{"a": 1}]
    assert list(tagged.chunks(single=True, version="v2")) == [
        {"type": "updates", "ns": (), "data": {"a": 1}}
    ]


def test_producer_threads_never_lose_a_wake_up():
    """Four threads emit 20 000 chunks between them while the consumer keeps falling asleep:
    it must see every chunk, each thread's in its own order, and then the end."""
    sink = StreamSink(("custom",))
    per_thread, threads = 5000, 4

    def produce(name: int) -> None:
        for i in range(per_thread):
            sink.emit("custom", (name, i))

    producers = [threading.Thread(target=produce, args=(n,)) for n in range(threads)]
    for thread in producers:
        thread.start()

    def finish() -> None:
        for thread in producers:
            thread.join()
        sink.end()

    threading.Thread(target=finish).start()
    seen = list(sink.chunks(single=True, version="v1"))
    assert len(seen) == per_thread * threads
    for name in range(threads):
        assert [i for n, i in seen if n == name] == list(range(per_thread))


def _sleeping_consumer(sink: StreamSink, received: list) -> threading.Thread:
    """A thread taking the sink's chunks into ``received``, returned once it sleeps."""

    def consume() -> None:
        for chunk in sink.chunks(single=True, version="v1"):
            received.append(chunk)

    consumer = threading.Thread(target=consume)
    consumer.start()
    deadline = time.monotonic() + 5
    while not sink.waiting:  # it sets this just before it sleeps
        assert time.monotonic() < deadline
        time.sleep(0.001)
    return consumer


def test_held_wake_ups_wake_a_sleeping_consumer_once_after_the_delay():
    sink = StreamSink(("updates",))
    wakes = _count_wakes(sink)
    received: list = []
    consumer = _sleeping_consumer(sink, received)
    passes = 0
    started = time.monotonic()
    while True:  # passes of a busy dispatcher delivering chunks, until it must wake
        hold_wakeups()
        sink.emit("updates", passes)
        passes += 1
        if not release_wakeups():
            break
        assert wakes[0] == 0  # held, though it sleeps: at most WAKE_DELAY
        time.sleep(_stream.WAKE_DELAY / 4)
    assert time.monotonic() - started >= _stream.WAKE_DELAY
    assert passes > 1
    assert wakes[0] == 1
    assert not release_wakeups()  # nothing held any more
    sink.end()
    consumer.join(5)
    assert received == list(range(passes))


def test_an_idle_dispatcher_wakes_held_consumers_at_once():
    sink = StreamSink(("updates",))
    wakes = _count_wakes(sink)
    received: list = []
    consumer = _sleeping_consumer(sink, received)
    hold_wakeups()
    sink.emit("updates", 1)
    assert release_wakeups()  # held: the dispatcher has more to read
    wake_held()  # it has not: nothing must wait for the delay
    assert wakes[0] == 1
    sink.end()
    consumer.join(5)
    assert received == [1]


def test_another_thread_wakes_a_held_consumer_at_once_and_it_takes_every_chunk():
    """The body's last chunk (its own thread) must not wait behind the dispatcher's hold,
    nor overtake the chunks the dispatcher emitted before it."""
    sink = StreamSink(("updates",))
    received: list = []
    consumer = _sleeping_consumer(sink, received)
    hold_wakeups()
    sink.emit("updates", "task")
    assert release_wakeups()  # held
    other = threading.Thread(target=sink.emit, args=("updates", "entrypoint"))
    other.start()
    other.join()
    deadline = time.monotonic() + 5
    while len(received) < 2:
        assert time.monotonic() < deadline, "the consumer was not woken"
        time.sleep(0.0005)
    assert received == ["task", "entrypoint"]
    sink.end()
    consumer.join(5)
    wake_held()  # the dispatcher's held wake-up: harmless once the consumer is awake


def test_the_dispatcher_wakes_a_streams_consumer_only_at_the_end_of_a_pass():
    """Through the process pool, in sync and async streams: every wake-up the dispatcher
    gives comes at the end of a pass (``wake_held``), none from a chunk it delivers."""
    wakers: list[str] = []
    original = StreamSink.wake

    def recording(self: StreamSink) -> None:
        wakers.append(sys._getframe(1).f_code.co_name)
        original(self)

    identity = task(_identity)

    @entrypoint()
    def job(n: int) -> list[int]:
        return [f.result() for f in [identity(i) for i in range(n)]]

    @entrypoint()
    async def ajob(n: int) -> list[int]:
        return [await f for f in [identity(i) for i in range(n)]]

    async def astreamed() -> list:
        return [chunk async for chunk in ajob.astream(500)]

    StreamSink.wake = recording
    try:
        chunks = list(job.stream(2000))
        achunks = asyncio.run(astreamed())
    finally:
        StreamSink.wake = original
    assert sorted(c["_identity"] for c in chunks[:-1]) == list(range(2000))
    assert chunks[-1] == {"job": list(range(2000))}
    assert sorted(c["_identity"] for c in achunks[:-1]) == list(range(500))
    assert achunks[-1] == {"ajob": list(range(500))}
    assert wakers, "the consumer never slept: the test proves nothing"
    assert set(wakers) <= {"wake_held", "_signal"}
    # "_signal" wakes come only from outside a pass: the body's last chunks and the end
    assert wakers.count("_signal") <= 6  # at most 3 a stream


def _identity(x: int) -> int:
    return x


def test_async_consumer_is_woken_from_another_thread():
    async def main() -> list:
        sink = StreamSink(("custom",), asyncio.get_running_loop())

        def produce() -> None:
            for i in range(1000):
                sink.emit("custom", i)
            sink.end()

        threading.Thread(target=produce).start()
        return [chunk async for chunk in sink.achunks(single=True, version="v1")]

    assert asyncio.run(main()) == list(range(1000))


def test_waking_the_consumer_of_a_closed_event_loop_is_harmless():
    loop = asyncio.new_event_loop()
    sink = StreamSink(("custom",), loop)
    loop.close()
    sink.waiting = True
    sink.emit("custom", 1)  # no RuntimeError escapes into the producer (the dispatcher)
    assert not sink.waiting
