"""Logging: known library noise is dropped, real errors are not."""

from __future__ import annotations


def test_the_saq_heartbeat_shutdown_race_is_not_logged_as_an_error(caplog):
    import logging

    from app.core.logging import quiet_known_library_noise

    quiet_known_library_noise()
    logger = logging.getLogger("litestar_saq.heartbeat")
    with caplog.at_level(logging.ERROR, logger="litestar_saq.heartbeat"):
        for error in (
            RuntimeError("Event loop stopped before Future completed."),
            RuntimeError("disk on fire"),
        ):
            try:
                raise error
            except RuntimeError:
                logger.exception("HeartbeatManager thread crashed")
    assert [r.exc_info[1].args[0] for r in caplog.records if r.exc_info] == ["disk on fire"]
