"""Span processors and exporters, named as upstream's `opentelemetry.sdk.trace.export`."""

from ferrotel._native import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    InMemorySpanExporter,
    SimpleSpanProcessor,
)

__all__ = ["BatchSpanProcessor", "ConsoleSpanExporter", "InMemorySpanExporter", "SimpleSpanProcessor"]
