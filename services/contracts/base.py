"""Base models: every contract rejects unknown fields, so a typo is an error, never a silent no-op."""

from __future__ import annotations

from datetime import datetime
from types import UnionType
from typing import Annotated, Any, ClassVar, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import InitErrorDetails

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
Text = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$")]
"""Free text: anything but NUL, which PostgreSQL cannot store."""


def _written_in_years_1970_to_2999(moment: datetime) -> datetime:
    if not 1970 <= moment.year <= 2999:
        raise ValueError("a time between the years 1970 and 2999")
    return moment


Instant = Annotated[
    AwareDatetime,
    AfterValidator(_written_in_years_1970_to_2999),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "pattern": "^(?:19[7-9][0-9]|2[0-9]{3})-"}
    ),
]
"""A moment a client names, with its time zone, in the years 1970 to 2999 as written: far
enough for any business date, and never near the ends of what the database and Python can hold
(0001-01-01 read back from PostgreSQL was a 500)."""


def _json_type(annotation: Any) -> str | None:
    """The pydantic error type of the JSON type a field takes, when pydantic's lax mode would
    also take other JSON types for it: `true` or `"12"` for a number, `1` or `"yes"` for a
    boolean, `0` for a date-time (1970-01-01)."""
    union = get_origin(annotation) in (Union, UnionType)
    leaves = set()
    for leaf in get_args(annotation) if union else (annotation,):
        while get_origin(leaf) is Annotated:  # Instant and the like
            leaf = get_args(leaf)[0]
        if leaf is not type(None):
            leaves.add(leaf)
    if leaves and leaves <= {int, float}:
        return "int_type" if leaves == {int} else "float_type"
    if leaves == {bool}:
        return "bool_type"
    if leaves and leaves <= {datetime, AwareDatetime}:
        return "datetime_type"
    return None


def _is_json_type(value: Any, error_type: str) -> bool:
    if error_type in ("int_type", "float_type"):
        return not isinstance(value, bool | str)
    if error_type == "bool_type":
        return isinstance(value, bool)
    return not isinstance(value, int | float)  # a date-time is a string


class Contract(BaseModel):
    """A request, response or event body. Unknown fields are rejected, and each field takes the
    JSON type its schema names, no other."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    __json_types__: ClassVar[dict[str, str]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.__json_types__ = {
            name: error_type
            for name, field in cls.model_fields.items()
            if (error_type := _json_type(field.annotation)) is not None
        }

    @model_validator(mode="before")
    @classmethod
    def _json_types(cls, data: Any) -> Any:
        # FastAPI validates a parsed body in pydantic's lax Python mode, which would read
        # `"ship_capacity": false` as 0: the schema promises a 422 for that.
        if isinstance(data, dict):
            wrong = [
                InitErrorDetails(type=error_type, loc=(name,), input=data[name])
                for name, error_type in cls.__json_types__.items()
                if name in data
                and data[name] is not None
                and not _is_json_type(data[name], error_type)
            ]
            if wrong:
                raise ValidationError.from_exception_data(cls.__name__, wrong)
        return data


class Message(Contract):
    """The `data` of a message on a Kafka topic: an `Event` or a `Command`.

    `TYPE` is the versioned CloudEvents type, `TOPIC` where it is published, and `KEY` names the
    Kafka key, the aggregate id, as a format of the message's fields (`"{order_id}"`), so all
    messages of one aggregate stay in order on one partition.
    """

    TYPE: ClassVar[str]
    TOPIC: ClassVar[str]
    KEY: ClassVar[str] = "{order_id}"

    @property
    def message_key(self) -> str:
        return self.KEY.format_map(self.__dict__)


class Event(Message):
    """Something that happened, named in the past tense (`StockReserved`); anyone may listen."""


class Command(Message):
    """An order to one service, named in the imperative (`ReserveStock`); it answers with
    events."""
