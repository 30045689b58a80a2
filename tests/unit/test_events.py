"""Domain events: listeners with an interest check are skipped for events they do not want, and the emitter
can ask beforehand whether anyone wants an event (the purchase path then skips the transaction)."""

from __future__ import annotations

from app.core.events import Event


async def test_listeners_run_only_for_events_they_want():
    event: Event[int] = Event("numbers", after_commit=False)
    seen: list[tuple[str, int]] = []

    @event.connect
    async def every(context, n):
        seen.append(("every", n))

    @event.connect_when(lambda n: n > 10)
    async def big(context, n):
        seen.append(("big", n))

    await event.emit(None, 5)
    await event.emit(None, 50)
    assert seen == [("every", 5), ("every", 50), ("big", 50)]


def test_wanted_says_whether_any_listener_would_act():
    event: Event[int] = Event("numbers", after_commit=False)
    assert not event.wanted(1)  # nobody listens

    @event.connect_when(lambda n: n % 2 == 0)
    async def even(context, n):
        return None

    assert event.wanted(2)
    assert not event.wanted(3)

    @event.connect
    async def every(context, n):
        return None

    assert event.wanted(3)  # a listener without an interest check wants everything
