"""Span processors and exporters, named as upstream's `opentelemetry.sdk.trace.export`."""

from ferrotel._native import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    InMemorySpanExporter,
    OTLPSpanExporter,
    SimpleSpanProcessor,
)

__all__ = [
    "BatchSpanProcessor",
    "ConsoleSpanExporter",
    "InMemorySpanExporter",
    "OTLPSpanExporter",
    "SimpleSpanProcessor",
]
