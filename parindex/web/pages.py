"""Drawing a page, the same way in every service (docs/architecture.md, decision 25).

`Pages(service_dir)` holds the service's templates (its own, then the shared layout) and its
catalog. `render` gives every template `lang`, `t('key')` and the form token `csrf`, remembers a
`?lang=` choice in the language cookie, sets the anonymous CSRF nonce when the token needed one,
and marks the page `no-store` (it may hold a token or someone's answers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from contracts.lifecycle import Stage
from parindex.runtime import endpoints as discovery
from parindex.web import campaign_pick, csrf
from parindex.web.cookies import set_cookie
from parindex.web.i18n import LANG_COOKIE, LANGS, Catalog, catalog, language, templates

YEAR_S = 365 * 86400


class Pages:
    def __init__(self, template_dir: Path | None = None, text_dir: Path | None = None) -> None:
        self.text: Catalog = catalog(text_dir)
        self.templates = templates(template_dir or Path(__file__).parent / "templates", self.text)

    def t(self, request: Request | str, key: str, **values: object) -> str:
        """A catalog text in the request's language (or a language code)."""
        lang = request if isinstance(request, str) else language(request)
        return self.text.t(lang, key, **values)

    def render(
        self,
        request: Request,
        name: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
        with_form: bool = True,
        **ctx: Any,
    ) -> Response:
        """`with_form=False` for a page with no form (error pages): no token, no nonce."""
        token = csrf.form_token(request) if with_form else ""
        bar = nav(request, ctx.get("campaign"), ctx.get("campaign_stage"))
        if bar is not None and not token:  # the bar's logout form needs the session's token
            token = csrf.form_token(request)
        resp = self.templates.TemplateResponse(
            request,
            name,
            {"lang": language(request), "csrf": token, "nav": bar, **ctx},
            status_code=status,
            headers={"Cache-Control": "no-store", **(headers or {})},
        )
        return finish(request, resp)


# The links of the bar, by role: (service, path, catalog key) (docs/architecture.md, decision 34).
NAV_LINKS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "admin": (
        ("identity", "/", "app.nav.home"),
        ("identity", "/admin/registry", "app.nav.registry"),
        ("notify", "/deliveries", "app.nav.deliveries"),
        ("survey", "/progress", "app.nav.progress"),
        ("scoring", "/dashboard", "app.nav.results"),
        ("identity", "/admin/staff", "app.nav.staff"),
        ("survey", "/admin/campaigns", "app.nav.campaigns"),
    ),
    "auditor": (
        ("identity", "/", "app.nav.home"),
        ("survey", "/progress", "app.nav.progress"),
        ("scoring", "/dashboard", "app.nav.results"),
    ),
    "focal_point": (
        ("identity", "/focal", "app.nav.focal"),
        ("survey", "/progress", "app.nav.unit_progress"),
    ),
    "respondent": (("survey", "/survey", "app.nav.my_ballot"),),
}


def link(request: Request, service: str, path: str) -> str:
    """A path at the one front door; absolute only when that service has another address."""
    base = endpoints(request).get(service, "").rstrip("/")
    here = str(request.base_url).rstrip("/")
    return path if not base or base == here else base + path


def nav(
    request: Request, campaign: object = None, unlisted: object = None
) -> dict[str, Any] | None:
    """The bar's contents for the signed-in person, or None (anonymous: no bar items).

    The principal is the one a route's dependency already verified (request.state), so
    drawing the bar never verifies a token twice or refuses a page by itself.
    """
    p = getattr(request.state, "principal", None)
    if p is None:
        return None
    staff = p.role in campaign_pick.STAFF
    shown = p.campaign_id or (campaign if isinstance(campaign, str) else None)
    if staff:
        shown = shown or campaign_pick.picked(request, p)
    shown = shown or request.query_params.get("campaign") or None
    stage = campaign_pick.stage(request, shown) if staff else None
    if staff and stage is None and isinstance(unlisted, Stage):
        stage = unlisted  # a page's own word for a campaign not on the log: a draft
    # The picker: unscoped staff choose the campaign every page shows (decision 39).
    picks = campaign_pick.choices(request, p) if staff and not p.campaign_id else []
    w = campaign_pick.watch(request)
    here = request.url.path
    links = [
        {"href": link(request, svc, path), "key": key, "current": here == path}
        for svc, path, key in NAV_LINKS.get(p.role, ())
    ]
    return {
        "name": p.name or p.subject,
        "role": f"app.role.{p.role}",
        "campaign": shown,
        "stage": f"app.stage.{stage.value}" if stage is not None else None,
        "stage_id": stage.value if stage is not None else None,
        "picks": [{"id": c, "name": w.name(c) if w else c} for c in picks],
        # A page answering a POST has no GET of its own to come back to: pick from home.
        "pick_action": here if request.method == "GET" else link(request, "identity", "/"),
        "links": links,
        "logout": link(request, "identity", "/logout"),
    }


def finish(request: Request, response: Response) -> Response:
    """The language and CSRF-nonce cookies a page (or a redirect from one) hands out."""
    if request.query_params.get("lang") in LANGS:
        set_cookie(request, response, LANG_COOKIE, language(request), max_age=YEAR_S)
    campaign_pick.remember(request, response)
    nonce = getattr(request.state, "new_csrf_nonce", None)
    if nonce is not None:
        set_cookie(request, response, csrf.NONCE_COOKIE, nonce, httponly=True)
    return response


def endpoints(request: Request) -> dict[str, str]:
    """Base URLs of the services (`parindex up` writes them); empty behind one host (compose)."""
    return discovery.services(request.app.state.settings.state_dir)


def login_url(request: Request, come_back: bool = True) -> str:
    """Identity's login page, coming back to this page afterwards."""
    base = endpoints(request).get("identity", "").rstrip("/")
    if not come_back:
        return f"{base}/login"
    here = (
        str(request.url)
        if base
        else request.url.path + (f"?{request.url.query}" if request.url.query else "")
    )
    return f"{base}/login?next={quote(here, safe='')}"


def to_login(request: Request) -> Response:
    come_back = request.method == "GET"
    return finish(request, RedirectResponse(login_url(request, come_back), status_code=303))
