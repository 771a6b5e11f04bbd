"""Pushing decided actions: the dispatcher claims due outbox rows and hands them to the registered targets' `push`."""

from .dispatcher import Dispatcher, PushOutcome, backoff

__all__ = ["Dispatcher", "PushOutcome", "backoff"]
