"""Base models: every contract rejects unknown fields, so a typo is an error, never a silent no-op."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Sku = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$"),
    Field(
        description="Stock keeping unit: letters, digits, '.', '_' and '-'.", examples=["TEE-WHT-M"]
    ),
]
Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-:]*$"),
    Field(description="A client-chosen or generated identifier."),
]


class Contract(BaseModel):
    """A request, response or event body. Unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Event(Contract):
    """The `data` of a message on a Kafka topic.

    `TYPE` is the versioned CloudEvents type, `TOPIC` where it is published; `message_key` is
    the Kafka key, the aggregate id, so all messages of one aggregate stay in order on one
    partition.
    """

    TYPE: ClassVar[str]
    TOPIC: ClassVar[str]

    @property
    def message_key(self) -> str:
        raise NotImplementedError
