"""The BentoML service: ``bentoml serve serving.service:FlightDelayService``.

Start it with ``python -m serving serve`` (or ``make serve``), which pins the
model store and the bind address. Settings come from the environment
(docs/serving.md).
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from typing import Annotated, Any

import bentoml
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from feature_repo.settings import Settings
from feature_repo.store import quiet_feast_warnings
from serving import header_timeout
from serving.api_key import ApiKeyMiddleware
from serving.contract import ContractMiddleware, EmptyBody
from serving.freshness_gauge import FreshnessGauges
from serving.serving_logs import configure_service_logging
from serving.serving_metrics import METRICS

quiet_feast_warnings()  # after Feast's import, or every request logs deprecations
warnings.filterwarnings("ignore", module="pydantic")

SETTINGS = Settings.from_env()
MAX_FLIGHTS = int(os.environ.get("FEASTLINE_MAX_FLIGHTS", "1000"))
WORKERS = int(os.environ.get("FEASTLINE_SERVING_WORKERS", "2"))
THREADS = int(os.environ.get("FEASTLINE_SERVING_THREADS", "4"))
RELOAD_CHECK_SECONDS = float(os.environ.get("FEASTLINE_RELOAD_CHECK_SECONDS", "5"))
PROFILING = os.environ.get("FEASTLINE_PROFILING", "on").lower() not in ("0", "off", "false", "no")

# A body above this is refused before it is parsed (1,000 flights take about 250 kB).
MAX_BODY_BYTES = int(os.environ.get("FEASTLINE_MAX_BODY_BYTES", str(1 << 20)))
BODY_TIMEOUT_SECONDS = float(os.environ.get("FEASTLINE_BODY_TIMEOUT_SECONDS", "10"))
HEADER_TIMEOUT_SECONDS = float(os.environ.get("FEASTLINE_HEADER_TIMEOUT_SECONDS", "10"))
API_KEY = os.environ.get("FEASTLINE_API_KEY")
if API_KEY is not None and not API_KEY.strip():
    # Set but empty would silently turn authentication off; unset means "no key wanted".
    raise RuntimeError("FEASTLINE_API_KEY is set but empty: set a key, or unset it")

_requests = __import__(f"{SETTINGS.dataset_module}.requests", fromlist=["requests"])
# Airports and carriers are read from the data directory at the first request, not
# here: `bentoml build` imports this module with no data directory at all.
FlightRequest = _requests.lazy_request_model(SETTINGS.raw_dir)
Flights = Annotated[list[FlightRequest], Field(min_length=1, max_length=MAX_FLIGHTS)]  # type: ignore[valid-type]


class PredictRequest(BaseModel):
    """The body of ``/predict``; anything besides ``flights`` is refused."""

    model_config = ConfigDict(extra="forbid")
    flights: Flights


log = logging.getLogger("serving")


class ModelInfo(BaseModel):
    tag: str
    feature_service: str
    threshold: float


class Prediction(BaseModel):
    flight_id: str | None
    late_probability: float
    late: bool
    missing_features: list[str]
    stale_features: list[str]
    unknown_aircraft: bool
    model_tag: str = Field(description="the model that answered this flight")
    role: str = Field(description="champion, or canary when a canary challenger answered")


class Predictions(BaseModel):
    """What ``/predict`` returns. Declared for the OpenAPI schema; the body itself is
    written with ``json.dumps``, because BentoML validates a returned ``dict`` against
    a JSON schema it rebuilds on every response (a tenth of a worker's CPU per call)."""

    model: ModelInfo
    challenger: dict[str, str] | None = Field(
        default=None, description="the challenger in rollout (tag, role), if any"
    )
    predictions: list[Prediction]
    imputation: str


def json_response(body: dict[str, Any]) -> Any:
    """A ready response; typed Any because the endpoints declare ``Predictions`` (for the
    schema) and return this in its place."""
    return Response(json.dumps(body, separators=(",", ":")).encode(), media_type="application/json")


@bentoml.service(
    name="flight_delay",
    workers=WORKERS,
    threads=THREADS,
    traffic={"timeout": 30},
    # Loopback unless told otherwise (the Bento's container image sets 0.0.0.0);
    # `bentoml serve --host` and BENTOML_HOST override both.
    http={"host": os.environ.get("FEASTLINE_SERVING_HOST", "127.0.0.1"), "port": 3000},
    endpoints={"livez": "/livez", "readyz": "/readyz"},
    logging={"access": {"enabled": False}},
    # BentoML's OpenTelemetry middleware builds a span per request even at its default
    # sample rate of 0, when no trace is ever kept: a quarter of the HTTP stack's CPU per
    # request on this machine (2.2 -> 1.6 ms for an empty endpoint). Remove this line
    # when a tracing exporter is configured.
    tracing={"excluded_urls": ["/predict"]},
)
class FlightDelayService:
    """Late-arrival probability for flights, from Feast online features."""

    def __init__(self) -> None:
        from serving.predictor import Predictor
        from serving.process import die_with_parent

        die_with_parent()  # this worker must not outlive the server, even a SIGKILLed one
        header_timeout.install(HEADER_TIMEOUT_SECONDS)
        configure_service_logging(SETTINGS.data_dir)
        started = time.perf_counter()
        _requests.known_codes(SETTINGS.raw_dir)  # no raw layer: fail at start-up, by name
        self.predictor = Predictor(SETTINGS)
        METRICS.serving(self.predictor.champion.tag, self.predictor.champion.scorer.fast)
        self.freshness = FreshnessGauges(SETTINGS)
        if RELOAD_CHECK_SECONDS > 0:
            self.predictor.watch_registry(RELOAD_CHECK_SECONDS)
        self.served = None
        if PROFILING:
            from serving.served_data import ServedDataLogger

            self.served = ServedDataLogger(SETTINGS, writer_id=f"pid{os.getpid()}")
        log.info(
            "model loaded",
            extra={
                "tag": self.predictor.champion.tag,
                "online_store": SETTINGS.online_store_kind,
                "seconds": round(time.perf_counter() - started, 2),
            },
        )

    @bentoml.api(route="/predict")
    def predict(self, flights: Flights, ctx: bentoml.Context) -> Predictions:
        """Score one or many flights (up to FEASTLINE_MAX_FLIGHTS per request)."""
        from feature_repo.run_lock import OnlineStoreUnavailable

        try:
            scored = self.predictor.score(flights)
        except OnlineStoreUnavailable as err:
            METRICS.store_unavailable.inc()
            ctx.response.status_code = 503
            log.warning("online store unavailable", extra={"error": str(err)})
            return json_response(
                {"error": f"online features unavailable, try again shortly: {err}"}
            )
        champion = scored.scores[0].model
        METRICS.serving(champion.tag, champion.scorer.fast)
        METRICS.observe(scored, len(flights))
        if self.served is not None:
            self.served.log_scored(flights, scored)
            METRICS.dropped(self.served.dropped)
        challenger = scored.scores[1] if len(scored.scores) > 1 else None
        return json_response(
            {
                "model": {
                    "tag": champion.tag,
                    "feature_service": champion.feature_service,
                    "threshold": champion.threshold,
                },
                "challenger": (
                    {"tag": challenger.model.tag, "role": challenger.role} if challenger else None
                ),
                "predictions": [
                    {
                        "flight_id": flight.flight_id,  # type: ignore[attr-defined]
                        "late_probability": scored.probabilities[i],
                        "late": scored.decisions[i],
                        "missing_features": scored.missing[i],
                        "stale_features": scored.stale[i],
                        "unknown_aircraft": scored.unknown_aircraft[i],
                        "model_tag": scored.answered_by[i].model.tag,
                        "role": scored.answered_by[i].role,
                    }
                    for i, flight in enumerate(flights)
                ],
                "imputation": "missing and stale features go to the model as missing values "
                "(NaN), which its trees route down the branch learned for them",
            }
        )

    @bentoml.api(route="/reload")
    def reload(self, ctx: bentoml.Context) -> dict[str, str]:
        """Pick up a newly promoted champion without a restart (this worker)."""
        from serving.champion import NoChampion

        try:
            old, new = self.predictor.reload()
        except NoChampion as err:  # keep serving the model in hand; say why it stays
            ctx.response.status_code = 503
            log.warning("reload failed", extra={"error": str(err)})
            return json_response({"error": str(err), "current": self.predictor.champion.tag})
        return {"previous": old, "current": new}

    @bentoml.api(route="/flush")
    def flush(self) -> dict[str, Any]:
        """Write this worker's served-data logs now, the open interval included.

        The logs are otherwise written every 30 s (wall clock). A controller that reads
        them at once (a replay's daily check, many simulated hours per wall second)
        calls this first, as the in-process replay calls ``ServedDataLogger.flush``.
        """
        if self.served is None:
            return {"flushed": False, "reason": "served-data logging is off"}
        self.served.flush()
        return {"flushed": True, "worker": os.getpid()}

    @bentoml.api(route="/model")
    def model(self) -> dict[str, Any]:
        active = self.predictor.active
        champion, challenger, rollout = active.champion, active.challenger, active.rollout
        return {
            "tag": champion.tag,
            "feature_service": champion.feature_service,
            "threshold": champion.threshold,
            "inputs": champion.model_inputs,
            # "fast": our tree walk; "fallback": the classifier's predict_proba.
            "scorer": "fast" if champion.scorer.fast else "fallback",
            "challenger": (
                {
                    "tag": challenger.tag,
                    "feature_service": challenger.feature_service,
                    "mode": rollout.mode,
                    "percent": rollout.percent,
                    "until": rollout.until,
                }
                if challenger is not None and rollout is not None
                else None
            ),
        }

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        self.freshness.close()
        self.predictor.close()
        if self.served is not None:
            self.served.close()

    def __is_ready__(self) -> bool:
        return self.predictor.online_store_answers()


FlightDelayService.add_asgi_middleware(  # type: ignore[attr-defined]
    ContractMiddleware,
    routes={
        "/predict": PredictRequest,
        "/reload": EmptyBody,
        "/flush": EmptyBody,
        "/model": EmptyBody,
    },
    max_body_bytes=MAX_BODY_BYTES,
    body_timeout=BODY_TIMEOUT_SECONDS,
)
if API_KEY is not None:
    # bentoml.service returns a Service, which its annotation calls the class.
    FlightDelayService.add_asgi_middleware(ApiKeyMiddleware, key=API_KEY)  # type: ignore[attr-defined]
