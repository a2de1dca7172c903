"""The AsyncAPI 3.0 document of a service's Kafka side: the topics it consumes and publishes,
every message described as the CloudEvents envelope around its event from `services.contracts`.

FastStream generates the skeleton from the broker: info, servers, and a channel with a `receive`
operation per subscriber (titled and described where the consumer module declares it). Two
things it cannot see are filled in from the contracts:

- message schemas: subscribers take the raw `KafkaMessage` (the inbox decodes the envelope and
  picks the event model by its `type`), so FastStream sees no payload type;
- the publishing side: events leave through the outbox relay's `broker.publish`, never through
  a FastStream publisher, so the topics a service publishes are declared in `PRODUCERS`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from faststream.specification import AsyncAPI, get_asyncapi_html
from pydantic.json_schema import models_json_schema

from services.contracts import inventory, orders, pricing, topics
from services.contracts.base import Message
from services.contracts.envelope import Envelope

# The service that publishes each topic (DESIGN.md §5): events come from the service that owns
# them; the commands to inventory come from orders, which drives the saga.
PRODUCERS: Mapping[str, str] = {
    topics.INVENTORY_COMMANDS.name: "orders",
    topics.INVENTORY_EVENTS.name: "inventory",
    topics.INVENTORY_AVAILABILITY.name: "inventory",
    topics.ORDERS_EVENTS.name: "orders",
    topics.PRICING_EVENTS.name: "pricing",
}

_KAFKA_BINDING = "0.4.0"
_SCHEMAS = "#/components/schemas/"
_ENVELOPE = "CloudEvent"
_HEADERS = "KafkaHeaders"


def events_by_topic() -> dict[str, list[type[Message]]]:
    """Every event and command class in the contracts, per topic, in type order."""
    found: dict[str, list[type[Message]]] = {}
    for module in (inventory, orders, pricing):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Message)
                and getattr(value, "TYPE", None)
                and getattr(value, "TOPIC", None)
            ):
                found.setdefault(value.TOPIC, []).append(value)
    for classes in found.values():
        classes.sort(key=lambda event: event.TYPE)
    return found


def published_topics(service: str) -> list[topics.TopicSpec]:
    return [spec for spec in topics.ALL_TOPICS if PRODUCERS.get(spec.name) == service]


def asyncapi_document(
    broker: Any, *, service: str, title: str, version: str, description: str | None = None
) -> dict[str, Any]:
    """The AsyncAPI document (as JSON-ready data) of `service`, built without a running broker."""
    document: dict[str, Any] = (
        AsyncAPI(
            broker,
            title=title,
            version=version,
            description=description,
            schema_version="3.0.0",
        )
        .to_specification()
        .to_jsonable()
    )
    channels: dict[str, Any] = document.setdefault("channels", {})
    operations: dict[str, Any] = document.setdefault("operations", {})
    components: dict[str, Any] = document.setdefault("components", {})
    specs = {spec.name: spec for spec in topics.ALL_TOPICS}
    by_topic = events_by_topic()
    servers = [{"$ref": f"#/servers/{name}"} for name in document.get("servers", {})]

    replaced: set[str] = set()
    for key, channel in channels.items():
        address = channel.get("address")
        if address not in by_topic:
            continue  # not one of ours: leave FastStream's description alone
        replaced.update(_component_names(channel.get("messages", {})))
        channel["messages"] = _message_refs(by_topic[address])
        _describe_topic(channel, specs[address])
        operation = operations.get(key)
        if operation is not None:
            operation["messages"] = _operation_refs(key, by_topic[address])

    for spec in published_topics(service):
        key = spec.name if spec.name not in channels else f"{spec.name} (publish)"
        channels[key] = {
            "address": spec.name,
            "title": spec.name,
            "servers": servers,
            "messages": _message_refs(by_topic.get(spec.name, [])),
        }
        _describe_topic(channels[key], spec)
        operations[f"publish {spec.name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{_pointer(key)}"},
            "summary": f"{service} publishes to {spec.name}",
            "description": "Written to the transactional outbox in the same database transaction "
            "as the change that caused it, then published by the outbox relay: at least once, "
            "in commit order per message key; consumers drop repeats by the CloudEvents id.",
            "messages": _operation_refs(key, by_topic.get(spec.name, [])),
        }

    messages: dict[str, Any] = components.setdefault("messages", {})
    for name in replaced:
        messages.pop(name, None)
    used = {event for key in channels for event in _events_of(channels[key], by_topic)}
    for event in sorted(used, key=lambda e: e.__name__):
        messages[event.__name__] = _message(event)
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    schemas.update(_schemas(used))
    _drop_unreferenced(schemas, document)
    return document


def asyncapi_html(document: Mapping[str, Any]) -> str:
    """FastStream's AsyncAPI viewer page (scripts from a CDN, like FastAPI's /docs)."""
    return get_asyncapi_html(_Document(dict(document)), try_it_out_path=None)


@dataclass(frozen=True)
class _Document:
    """What FastStream's viewer needs of a specification."""

    document: dict[str, Any]

    @property
    def title(self) -> str:
        return str(self.document["info"]["title"])

    def to_json(self) -> str:
        return json.dumps(self.document)

    def to_jsonable(self) -> Any:
        return self.document

    def to_yaml(self) -> str:
        return self.to_json()  # JSON is YAML


def _describe_topic(channel: dict[str, Any], spec: topics.TopicSpec) -> None:
    channel.setdefault("description", spec.description)
    binding: dict[str, Any] = {
        "topic": spec.name,
        "partitions": spec.partitions,
        "bindingVersion": _KAFKA_BINDING,
    }
    if "cleanup.policy" in spec.config:
        binding["topicConfiguration"] = {"cleanup.policy": spec.config["cleanup.policy"].split(",")}
    channel["bindings"] = {"kafka": binding}


def _message_refs(events: Iterable[type[Message]]) -> dict[str, Any]:
    return {e.__name__: {"$ref": f"#/components/messages/{_pointer(e.__name__)}"} for e in events}


def _operation_refs(channel_key: str, events: Iterable[type[Message]]) -> list[dict[str, str]]:
    pointer = _pointer(channel_key)
    return [{"$ref": f"#/channels/{pointer}/messages/{e.__name__}"} for e in events]


def _component_names(refs: Mapping[str, Any]) -> set[str]:
    prefix = "#/components/messages/"
    return {
        unquote(ref["$ref"][len(prefix) :]).replace("~1", "/").replace("~0", "~")
        for ref in refs.values()
        if isinstance(ref, dict) and str(ref.get("$ref", "")).startswith(prefix)
    }


def _events_of(
    channel: Mapping[str, Any], by_topic: Mapping[str, list[type[Message]]]
) -> set[type[Message]]:
    names = set(channel.get("messages", {}))
    return {e for e in by_topic.get(channel.get("address", ""), []) if e.__name__ in names}


def _message(event: type[Message]) -> dict[str, Any]:
    doc = (event.__doc__ or "").strip()
    message: dict[str, Any] = {
        "name": event.TYPE,
        "title": event.__name__,
        "contentType": "application/cloudevents+json",
        "headers": {"$ref": _SCHEMAS + _HEADERS},
        "payload": {
            "allOf": [
                {"$ref": _SCHEMAS + _ENVELOPE},
                {
                    "type": "object",
                    "properties": {
                        "type": {"const": event.TYPE},
                        "data": {"$ref": _SCHEMAS + event.__name__},
                    },
                },
            ]
        },
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "description": "The aggregate id (see the channel): every message of one "
                    "aggregate goes to one partition, in order.",
                },
                "bindingVersion": _KAFKA_BINDING,
            }
        },
    }
    if doc:
        message["summary"] = doc.splitlines()[0]
        message["description"] = doc
    return message


def _schemas(events: Iterable[type[Message]]) -> dict[str, Any]:
    models = sorted(events, key=lambda e: e.__name__)
    _, definitions = models_json_schema(
        [(model, "validation") for model in models], ref_template=_SCHEMAS + "{model}"
    )
    schemas: dict[str, Any] = dict(definitions.get("$defs", {}))
    envelope = Envelope.model_json_schema(ref_template=_SCHEMAS + "{model}")
    envelope["title"] = _ENVELOPE
    envelope["description"] = (
        "The CloudEvents 1.0 envelope (structured JSON mode) every message travels in. `type` "
        "names the event and its version; `data` is that event; `id` is unique per event and "
        "is what consumers deduplicate on; `subject` is the message key."
    )
    schemas[_ENVELOPE] = envelope
    schemas[_HEADERS] = {
        "type": "object",
        "properties": {
            "traceparent": {
                "type": "string",
                "description": "W3C trace context of the request or message that caused the "
                "event, so the consumer's work joins the same trace.",
            },
            "tracestate": {"type": "string"},
            "content-type": {"const": "application/cloudevents+json"},
        },
    }
    return schemas


def _drop_unreferenced(schemas: dict[str, Any], document: Mapping[str, Any]) -> None:
    """Remove the placeholder FastStream made for the payloads it could not see, once no
    message refers to it any more."""
    placeholder = "EmptyPayload"
    if placeholder in schemas and f'"{_SCHEMAS}{placeholder}"' not in json.dumps(document):
        del schemas[placeholder]


def _pointer(key: str) -> str:
    """A JSON pointer segment (RFC 6901) in a URI fragment, encoded as FastStream does."""
    return quote(key.replace("~", "~0").replace("/", "~1"), safe="~:._-")
