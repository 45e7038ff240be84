"""The application factory: one Flask app per worker, built from validated settings."""

from __future__ import annotations

import logging
import time

import jinja2
from flask import Flask, Response
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from fallback.checking.status import PublicStatus, ThrottledLog
from fallback.core.counters import Metrics, multiprocess_folder
from fallback.core.flag import CachedFlag
from fallback.core.paths import shipped_templates
from fallback.core.settings import Settings
from fallback.serving.framing import MAX_BODY
from fallback.storage import Storage, StorageError, open_storage
from fallback.team import admin, admin_actions, api, metrics
from fallback.team.sessions import LIFETIME, SessionInterface
from fallback.visitor import assets, health, unsubscribe
from fallback.visitor import pages as web
from fallback.visitor.hotpath import HotPath
from fallback.web.admission import Admission
from fallback.web.form_token import FormToken
from fallback.web.guard import ForwardedWarning, add_security_headers
from fallback.web.languages import init_i18n
from fallback.web.runtime import Runtime, runtime

log = logging.getLogger("fallback")


def secret_key_for(settings: Settings, storage: Storage) -> str:
    """FALLBACK_SECRET_KEY, or one generated once and kept in the database."""
    if settings.secret_key:
        return settings.secret_key
    key, generated = storage.secret_key()
    if generated:
        log.warning("FALLBACK_SECRET_KEY is not set: generated a secret key and stored it in the database")
    return key


def brand_context() -> dict:
    """What every template may show of the operator's brand."""
    settings = runtime().settings
    return {"site_name": settings.site_name, "contact_email": settings.contact_email, "has_logo": bool(settings.logo)}


def too_large(error: HTTPException) -> Response:
    """A body over the limit: a short, clear refusal."""
    return Response("This request is too large.\n", 413, mimetype="text/plain")


def database_unavailable(error: StorageError) -> Response:
    """A database that cannot be read or written: 503 and a short word, the details in the log, never a 500."""
    log.error("request refused, the database is unavailable: %s", error)
    response = Response("The database is unavailable; try again shortly.\n", 503, mimetype="text/plain")
    response.headers["Retry-After"] = "30"
    response.headers["Cache-Control"] = "no-store"
    return response


def install_app_wide(app: Flask) -> None:
    """What holds for every blueprint: the security headers, the brand in templates, the error pages."""
    app.after_request(add_security_headers)
    app.context_processor(brand_context)
    app.register_error_handler(413, too_large)
    app.register_error_handler(StorageError, database_unavailable)


def create_app(settings: Settings, storage: Storage | None = None, threads: int = 8) -> Flask:
    """Build the app (for `threads` request threads): public pages, status endpoints, the admin area."""
    storage = storage or open_storage(settings.database, threads=threads)
    app = Flask(__name__, template_folder=str(shipped_templates()), static_folder=None)
    if settings.templates:
        # The operator's folder first: any template there replaces the shipped one.
        app.jinja_loader = jinja2.ChoiceLoader(
            [jinja2.FileSystemLoader(settings.templates), jinja2.FileSystemLoader(str(shipped_templates()))]
        )
    app.config.update(
        SECRET_KEY=secret_key_for(settings, storage),
        SESSION_COOKIE_NAME="fallback_admin",
        SESSION_COOKIE_PATH="/_fallback/admin",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Behind a proxy that is not trusted, the request looks like HTTP: the public URL says what visitors use.
        SESSION_COOKIE_SECURE=settings.https_public_url,
        PERMANENT_SESSION_LIFETIME=LIFETIME,
        # A session ends 8 hours after log-in however busy the admin (fallback.sessions): no sliding.
        SESSION_REFRESH_EACH_REQUEST=False,
        # The worker refuses a longer body before it is read (serving.framing).
        MAX_CONTENT_LENGTH=MAX_BODY,
        MAX_FORM_MEMORY_SIZE=MAX_BODY,
    )
    flag = CachedFlag(storage.flag.read)
    rt = app.extensions["fallback"] = Runtime(
        settings=settings,
        storage=storage,
        flag=flag,
        tokens=FormToken(app.config["SECRET_KEY"]),
        secret_key=app.config["SECRET_KEY"],
        status=PublicStatus(flag.get),
        health_log=ThrottledLog(),
        metrics=Metrics(multiprocess_folder(), [metrics.DatabaseCollector(storage, settings)]),
    )
    if settings.admit_rate is not None:
        rt.admission = Admission(
            storage,
            rt.secret_key,
            settings.https_public_url,
            counted=rt.metrics.admitted,
            ceiling=settings.admit_rate,
            adapt=settings.admit_adapt,
        )
        paused = flag.get().served_state(storage.clock()) != "up"
        storage.admission.configure(settings.admit_rate, time.time(), paused)
    # Flask documents wrapping wsgi_app in middleware; mypy sees a method being replaced.
    app.wsgi_app = HotPath(app.wsgi_app, rt)  # type: ignore[method-assign]
    init_i18n(app)
    app.session_interface = SessionInterface()
    if settings.trusted_proxies:
        # Only as many X-Forwarded-For/-Proto hops as the operator vouches for: the rest could be
        # forged. Host is not taken from X-Forwarded-Host: proxies pass Host itself through, and a
        # forged one would defeat the redirect-loop guard.
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    else:
        app.wsgi_app = ForwardedWarning(app.wsgi_app)  # type: ignore[method-assign]
    install_app_wide(app)
    app.register_blueprint(web.blueprint)
    app.register_blueprint(assets.blueprint)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(admin.blueprint)
    app.register_blueprint(admin_actions.blueprint)
    app.register_blueprint(api.blueprint)
    app.register_blueprint(metrics.blueprint)
    app.register_blueprint(unsubscribe.blueprint)
    if not settings.admin_password:
        log.warning("FALLBACK_ADMIN_PASSWORD is not set: the admin area answers 404")
    return app
