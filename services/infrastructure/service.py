"""Composition shared by every service: the runtime (engine, broker, relay), a FastAPI app with
problem+json errors, `/healthz`, `/readyz` and `/metrics`, and a lifespan that starts and stops
consumers, the outbox relay and periodic jobs in the right order."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from faststream.kafka import KafkaBroker, KafkaRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.contracts.operations import ConsumerLag, MessagingStatus
from services.contracts.topics import TopicSpec
from services.infrastructure.asyncapi import asyncapi_document, asyncapi_html
from services.infrastructure.broker import create_broker, ensure_topics
from services.infrastructure.database import UnitOfWork, create_engine
from services.infrastructure.errors import (
    PROBLEM_JSON,
    InvalidRequest,
    ServiceUnavailable,
    install_problem_handlers,
)
from services.infrastructure.logs import configure_logging
from services.infrastructure.metrics import (
    CONSUMER_LAG,
    HTTP_REQUEST_DURATION,
    observe_consumer_lag,
)
from services.infrastructure.outbox import OutboxRelay
from services.infrastructure.settings import ServiceSettings
from services.infrastructure.telemetry import configure_tracing, instrument

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The long-lived resources of one service process. A service without messaging (the
    gateway: HTTP in, HTTP out) has no broker and no outbox relay."""

    settings: ServiceSettings
    engine: AsyncEngine
    broker: KafkaBroker | None
    relay: OutboxRelay | None
    unit_of_work_class: type[UnitOfWork] = UnitOfWork

    @classmethod
    def build(
        cls,
        settings: ServiceSettings,
        *,
        messaging: bool = True,
        unit_of_work_class: type[UnitOfWork] = UnitOfWork,
    ) -> Runtime:
        """`unit_of_work_class`: a service's own unit of work, with its repositories."""
        configure_logging(settings.service_name, settings.log_level, settings.log_format)
        configure_tracing(settings.service_name)
        engine = create_engine(
            settings.database_url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
        )
        if not messaging:
            return cls(settings, engine, None, None, unit_of_work_class)
        broker = create_broker(settings)
        relay = OutboxRelay(
            engine,
            broker,
            service=settings.service_name,
            batch_size=settings.outbox_batch_size,
            poll_interval=settings.outbox_poll_interval_seconds,
            retention_hours=settings.outbox_retention_hours,
        )
        return cls(settings, engine, broker, relay, unit_of_work_class)

    def unit_of_work(self) -> UnitOfWork:
        return self.unit_of_work_class(
            self.engine,
            source=f"/omniroute/{self.settings.service_name}",
            on_commit=self.relay.wake if self.relay is not None else None,
        )


async def unit_of_work(request: Request) -> UnitOfWork:
    """FastAPI dependency: a fresh unit of work on the service's runtime."""
    runtime: Runtime = request.app.state.runtime
    return runtime.unit_of_work()


UnitOfWorkDep = Annotated[UnitOfWork, Depends(unit_of_work)]


class RequestMetrics:
    """Request latency per route, as plain ASGI: Starlette's BaseHTTPMiddleware costs a task
    and a stream per request, which showed in profiles of the quote path."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        # Label children bound once per (method, route, status): `.labels()` takes a lock.
        self._timers: dict[tuple[str, str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = "500"

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            key = (scope["method"], route, status)
            timer = self._timers.get(key)
            if timer is None:
                timer = self._timers[key] = HTTP_REQUEST_DURATION.labels(self.service, *key)
            timer.observe(time.perf_counter() - started)


@dataclass
class PeriodicJob:
    """A coroutine run every `interval` seconds; failures are logged and retried next time."""

    name: str
    interval: float
    run: Callable[[], Awaitable[object]]
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("periodic job %s failed; next run in %.1fs", self.name, self.interval)
            await asyncio.sleep(self.interval)


def tune_garbage_collection() -> None:
    """The collector tuned for a process that serves many small requests (measured under quote
    load, in CPU per quote):

    - what start-up made (modules, the app, the schemas: ~150,000 objects) lives as long as the
      process; frozen, a full collection no longer walks it (they came every few hundred
      requests and took about a fifth of the CPU);
    - the youngest generation is collected after 20,000 new objects instead of 700: a request's
      objects mostly die with it, and collecting them while 64 requests were in flight only
      promoted them (~9%).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


def create_service_app(
    runtime: Runtime,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    kafka_routers: Iterable[KafkaRouter] = (),
    topics: Iterable[TopicSpec] = (),
    jobs: Sequence[PeriodicJob] = (),
    resources: Sequence[Callable[[FastAPI], contextlib.AbstractAsyncContextManager[object]]] = (),
    version: str = "0.1.0",
) -> FastAPI:
    """`resources` are entered, in order, once the broker and relay run, and left before they
    stop (HTTP clients, start-up set-up)."""
    settings = runtime.settings
    kafka_routers = tuple(kafka_routers)
    if kafka_routers and runtime.broker is None:
        raise ValueError("consumers need a runtime built with messaging")
    for kafka_router in kafka_routers:
        assert runtime.broker is not None
        runtime.broker.include_router(kafka_router)
    topics = tuple(topics)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.kafka_create_topics and topics:
            await ensure_topics(
                settings.kafka_bootstrap_servers,
                topics,
                replication_factor=settings.kafka_topic_replication_factor,
            )
        if runtime.broker is not None and runtime.relay is not None:
            await runtime.broker.start()
            runtime.relay.start()
        try:
            async with contextlib.AsyncExitStack() as stack:
                for resource in resources:
                    await stack.enter_async_context(resource(app))
                for job in jobs:
                    job.start()
                tune_garbage_collection()
                log.info("%s started", settings.service_name)
                try:
                    yield
                finally:
                    # Stop taking work first, then drain what is running, then let go of the
                    # database.
                    for job in jobs:
                        await job.stop()
        finally:
            if runtime.broker is not None and runtime.relay is not None:
                await runtime.broker.stop()
                await runtime.relay.stop()
            await runtime.engine.dispose()
        log.info("%s stopped", settings.service_name)

    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        dependencies=[Depends(one_value_per_query_parameter)],
    )
    install_problem_handlers(app)
    instrument(app)
    app.state.runtime = runtime
    for router in routers:
        app.include_router(router)
    app.include_router(_operations_router(runtime))

    app.add_middleware(RequestMetrics, service=settings.service_name)
    return app


async def one_value_per_query_parameter(request: Request) -> None:
    """A query parameter that takes one value, given twice, is a 422: which one would count is
    a guess (FastAPI would quietly take the last), and the document promises one value."""
    counts: dict[str, int] = {}
    for name, _ in request.query_params.multi_items():
        counts[name] = counts.get(name, 0) + 1
    if all(n == 1 for n in counts.values()):
        return  # the common case, on every request: nothing repeated, no need to look further
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None:
        return
    single = {name for name, many in _query_parameters(dependant) if not many}
    repeated = sorted(name for name, n in counts.items() if n > 1 and name in single)
    if repeated:
        raise InvalidRequest(
            "query parameters that take one value were given more than once: "
            + ", ".join(f"{name!r} ({counts[name]} times)" for name in repeated),
            errors=[
                {"loc": ["query", name], "msg": "takes one value", "type": "repeated"}
                for name in repeated
            ],
        )


def _query_parameters(dependant: Any) -> list[tuple[str, bool]]:
    """Each query parameter's name and whether it takes a list, from the route's dependencies
    and the fields of query models (`Annotated[Model, Query()]`)."""
    found = []
    for parameter in dependant.query_params:
        annotation = parameter.field_info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for name, inner in annotation.model_fields.items():
                found.append((inner.alias or name, _takes_many(inner)))
        else:
            found.append((parameter.alias, _takes_many(parameter.field_info)))
    for sub in dependant.dependencies:
        found.extend(_query_parameters(sub))
    return found


def _takes_many(field_info: Any) -> bool:
    """Whether a query parameter's annotation is a list (or tuple, or set), optional or not."""
    pending = [field_info.annotation]
    while pending:
        annotation = pending.pop()
        origin = typing.get_origin(annotation)
        if origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set, frozenset):
            return True
        if origin is not None:
            pending.extend(typing.get_args(annotation))
    return False


PROBLEM_RESPONSES_503 = {
    "description": "Not ready: `unavailable` names what does not answer",
    "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def _operations_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @router.get("/readyz", responses={503: PROBLEM_RESPONSES_503})
    async def readyz() -> dict[str, str]:
        """Readiness: the database answers, and the broker too where the service uses one."""
        problems = []
        try:
            async with runtime.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), timeout=2)
        except Exception as exc:
            problems.append(f"database: {exc.__class__.__name__}")
        if runtime.broker is not None and not await runtime.broker.ping(timeout=2):
            problems.append("broker: not reachable")
        if problems:
            raise ServiceUnavailable("not ready: " + "; ".join(problems), unavailable=problems)
        ready = {"status": "ready", "database": "ok"}
        if runtime.broker is not None:
            ready["broker"] = "ok"
        return ready

    @router.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics: HTTP latency, message processing, consumer lag, the outbox, and
        the service's own outcomes (services/infrastructure/metrics.py lists them all)."""
        if runtime.broker is not None:
            await observe_consumer_lag(runtime.broker, runtime.settings.service_name)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    if runtime.relay is not None:

        @router.get("/operations/messaging")
        async def messaging() -> MessagingStatus:
            """This service's dead letters and outbox backlog, and the lag of this replica's
            consumers, for the command center."""
            async with runtime.engine.connect() as conn:
                row = (await conn.execute(_MESSAGING, {"cap": _MESSAGING_COUNT_CAP})).one()
            return MessagingStatus(
                service=runtime.settings.service_name,
                dead_letters=row.dead_letters,
                oldest_dead_letter_at=row.oldest_dead_letter_at,
                outbox_backlog=row.outbox_backlog,
                oldest_unpublished_at=row.oldest_unpublished_at,
                consumer_lag=await _consumer_lag(runtime),
            )

    if runtime.broker is not None:
        broker = runtime.broker
        documents: dict[str, dict[str, object]] = {}

        def asyncapi(app: FastAPI) -> dict[str, object]:
            # Built on first use: by then every subscriber is registered, and it never changes.
            if "document" not in documents:
                documents["document"] = asyncapi_document(
                    broker,
                    service=runtime.settings.service_name,
                    title=app.title,
                    version=app.version,
                    description=app.description,
                )
            return documents["document"]

        @router.get("/asyncapi.json", include_in_schema=False)
        async def asyncapi_json(request: Request) -> JSONResponse:
            """AsyncAPI 3.0: the topics this service consumes and publishes, and their messages."""
            return JSONResponse(asyncapi(request.app))

        @router.get("/asyncapi", include_in_schema=False)
        async def asyncapi_docs(request: Request) -> HTMLResponse:
            """The AsyncAPI document, rendered for people."""
            return HTMLResponse(asyncapi_html(asyncapi(request.app)))

    return router


# Counts are capped, as the relay's backlog gauge is: a huge backlog costs a bounded walk of the
# partial index. The oldest rows are found by id (both tables number rows as they come).
_MESSAGING_COUNT_CAP = 100_000
_MESSAGING = text(
    "SELECT"
    " (SELECT count(*) FROM (SELECT 1 FROM dead_letters LIMIT :cap) AS d) AS dead_letters,"
    " (SELECT received_at FROM dead_letters ORDER BY id LIMIT 1) AS oldest_dead_letter_at,"
    " (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE published_at IS NULL LIMIT :cap) AS o)"
    " AS outbox_backlog,"
    " (SELECT created_at FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1)"
    " AS oldest_unpublished_at"
)


async def _consumer_lag(runtime: Runtime) -> tuple[ConsumerLag, ...]:
    """Lag per consumer group and topic, as `/metrics` reads it (from the consumers' own state,
    no call to the broker), summed over the partitions this replica holds."""
    if runtime.broker is None:
        return ()
    service = runtime.settings.service_name
    await observe_consumer_lag(runtime.broker, service)
    lag: dict[tuple[str, str], int] = {}
    for metric in CONSUMER_LAG.collect():
        for sample in metric.samples:
            if sample.labels.get("service") == service:
                key = (sample.labels["group"], sample.labels["topic"])
                lag[key] = lag.get(key, 0) + int(sample.value)
    return tuple(
        ConsumerLag(group=group, topic=topic, lag=value)
        for (group, topic), value in sorted(lag.items())
    )
