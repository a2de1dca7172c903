"""The CloudEvents 1.0 envelope every Kafka message travels in (structured JSON mode)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.contracts.base import Message


class Envelope(BaseModel):
    """A CloudEvent. Extension attributes are allowed by the spec, so unknown top-level fields are
    kept rather than refused; `data` is validated strictly against the model named by `type`."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(min_length=1, max_length=128)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    specversion: Literal["1.0"] = "1.0"
    time: datetime
    subject: str | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]

    @classmethod
    def wrap(cls, event: Message, *, source: str, event_id: str | None = None) -> Envelope:
        return cls(
            id=event_id or str(uuid.uuid4()),
            source=source,
            type=event.TYPE,
            time=datetime.now(UTC),
            subject=event.message_key,
            data=event.model_dump(mode="json"),
        )
