"""Exceptions raised by the channel primitives."""

from __future__ import annotations

__all__ = ["ChannelClosed", "WouldBlock"]


class WouldBlock(Exception):
    """A ``*_nowait`` operation could not complete without waiting.

    Raised by :meth:`Chan.send_nowait` when no receiver is parked and the buffer is full
    (or the channel is unbuffered), and by :meth:`Chan.recv_nowait` when nothing can be
    received and the channel is still open.
    """


class ChannelClosed(Exception):
    """A send on a closed channel, or a second close of a channel.

    These are the operations that make Go panic. Receiving from a closed channel is not an
    error: it drains the buffer, then reports ``ok=False``.
    """
