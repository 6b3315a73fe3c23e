"""The service's HTTP API (FastAPI): read routes (health, accounts, snapshots, the status page, metrics),
acting routes behind a bearer token (step now, forecast), one error shape for every error, and HEAD
answered on every GET route."""

from __future__ import annotations

import os
import secrets
from contextlib import asynccontextmanager

from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from trading.service import TOKEN_ENV, Service, _shown


def check_token(header: str | None) -> tuple[int, str, str] | None:
    """None when the bearer token is right; else (HTTP status, error, hint)."""
    token = os.environ.get(TOKEN_ENV)
    if not token:
        return 403, "acting endpoints are off", f"start lstm-trader serve with {TOKEN_ENV} set"
    if not header or not header.lower().startswith("bearer "):
        return 401, "missing bearer token", f"send Authorization: Bearer ${TOKEN_ENV}"
    if not secrets.compare_digest(header[7:].strip().encode(), token.encode()):
        return 403, "wrong bearer token", f"send the {TOKEN_ENV} the service was started with"
    return None


def create_app(service: Service) -> FastAPI:
    from trading.page import StatusPage, metrics_text, plotly_js

    @asynccontextmanager
    async def lifespan(_app):
        await service.start()
        yield
        await service.stop()

    app = FastAPI(
        title="lstm-trader",
        summary="Paper accounts stepped after each close: their state, latest predictions and health.",
        lifespan=lifespan,
    )
    app.add_middleware(HeadAsGet)
    page = StatusPage(service)
    json_type = "application/json"

    # one error shape for every error, the framework's own (404, 405, 422) included: {"error", "hint"}
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        hints = {404: "the endpoints are listed at /docs", 405: "the methods each endpoint takes are at /docs"}
        return JSONResponse(
            {
                "error": f"{exc.detail} ({request.method} {_shown(request.url.path, 80)})",
                "hint": hints.get(exc.status_code),
            },
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # the offending value is not echoed: it may be huge, or a NaN that JSON cannot hold
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            error = "the body is not valid JSON"
        else:
            where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "the body"
            error = f"{where}: {first.get('msg', 'invalid')}"
        return JSONResponse({"error": error, "hint": "the request's fields are at /docs"}, status_code=422)

    def unknown(name: str) -> JSONResponse:
        return JSONResponse(
            {"error": f"unknown paper account '{_shown(name)}'", "hint": "served: " + ", ".join(service.runners)},
            status_code=404,
        )

    def snapshot(name: str, what: str) -> Response:
        if name not in service.runners:
            return unknown(name)
        raw = service.runners[name].raw.get(what)
        if raw is None:
            return JSONResponse(
                {"error": f"{name} has no step yet", "hint": "the service steps it after the next close"},
                status_code=404,
            )
        return Response(raw, media_type=json_type)

    @app.get("/", response_class=HTMLResponse, summary="The status page")
    def index() -> HTMLResponse:
        return HTMLResponse(page.html())

    @app.get("/assets/plotly.min.js", include_in_schema=False)
    def plotly() -> Response:
        return Response(plotly_js(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    @app.get("/health", summary="Alive; last step, next run and open alerts per account")
    async def health() -> dict:
        return service.health()

    @app.get("/accounts", summary="The served accounts")
    async def accounts() -> list[dict]:
        return service.accounts()

    @app.get("/accounts/{name}", summary="An account's state: what `paper status --json` prints")
    async def account(name: str) -> Response:
        return snapshot(name, "status")

    @app.get("/accounts/{name}/equity", summary="Daily equity beside the backtest replay of the same predictions")
    async def equity(name: str) -> Response:
        return snapshot(name, "equity")

    @app.get("/accounts/{name}/latest", summary="The latest prediction, the decision and the model that made it")
    async def latest(name: str) -> Response:
        return snapshot(name, "latest")

    @app.get("/accounts/{name}/health", summary="Live forecast quality beside the research run's; the checks")
    async def account_health(name: str) -> Response:
        return snapshot(name, "health")

    @app.post("/forecast", summary="The direct multi-horizon forecast with its 80% band, cached per close")
    async def forecast(
        ticker: str | None = Body(
            None, max_length=64, description="a ticker of the account's data; default: its only one"
        ),
        days: int = Body(10, ge=1, le=260, description="trading days ahead"),
        account: str | None = Body(
            None, max_length=64, description="the account whose model settings and data; default: the only one"
        ),
    ) -> Response:
        if account is None:
            if len(service.runners) != 1:
                return JSONResponse(
                    {"error": "name the account", "hint": "served: " + ", ".join(service.runners)}, status_code=422
                )
            account = next(iter(service.runners))
        if account not in service.runners:
            return unknown(account)
        code, body = await service.forecast(account, ticker, days)
        return Response(body, status_code=code, media_type=json_type)

    @app.post("/accounts/{name}/step", status_code=202, summary="Step now (needs the bearer token)")
    async def step(name: str, request: Request) -> JSONResponse:
        refused = check_token(request.headers.get("authorization"))
        if refused:
            code, error, hint = refused
            headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
            return JSONResponse({"error": error, "hint": hint}, status_code=code, headers=headers)
        if name not in service.runners:
            return unknown(name)
        code, body = service.step_now(name)
        return JSONResponse(body, status_code=code)

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus text format")
    def metrics() -> Response:
        return Response(metrics_text(service), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


class HeadAsGet:
    """HEAD answered on every GET route (monitors use it): the GET's status and headers, no body."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
