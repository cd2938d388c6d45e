"""A model that records OpenTelemetry spans in its own process, as JSON lines in ``$SPAN_LOG``.

A process pool's model worker is a process of its own: it needs its own
tracer provider, set in ``setup()`` as the README says.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from pydantic import BaseModel

from utilserve import Model


class Number(BaseModel):
    x: int


class Traced(Model):
    Input = Number
    Output = Number

    def setup(self) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

        class ToFile(SpanExporter):
            def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
                with open(os.environ["SPAN_LOG"], "a") as log:
                    log.writelines(span.to_json(indent=None) + "\n" for span in spans)
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(ToFile()))
        trace.set_tracer_provider(provider)

    def predict(self, batch: list[Number]) -> list[Number]:
        return [Number(x=item.x * 2) for item in batch]
