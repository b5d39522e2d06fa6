"""REST endpoints for the recommendation slots: thin views over shop_reco.services.recommendations.

Every endpoint answers ``{"slot", "version", "items": [{"key", "source", "reason", "position", "score",
"token", "product": {...}}], ...}``. Common query parameters: ``limit`` (1..API_MAX_LIMIT), ``exclude``
(comma-separated keys already shown on the page, so a headless page never repeats a product), and for staff
only ``user`` / ``visitor`` to preview someone else's recommendations.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, QueryDict
from django.urls import path
from rest_framework import serializers
from rest_framework.authentication import BasicAuthentication, SessionAuthentication
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from shop_reco.api.permissions import ShopperPreviewPermission
from shop_reco.api.product_serializers import AdapterProductSerializer, product_serializer_class
from shop_reco.conf import reco_settings
from shop_reco.services import recommendations as reco
from shop_reco.services.context import RecoContext, context_for

logger = logging.getLogger("shop_reco.recommendations")

try:
    from drf_spectacular.types import OpenApiTypes
    from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
except ImportError:  # the schema is optional: without drf-spectacular the views work the same
    OpenApiParameter = OpenApiResponse = OpenApiTypes = None  # type: ignore[assignment,misc]

    def extend_schema(*args: Any, **kwargs: Any) -> Any:  # type: ignore[no-redef,misc]
        return lambda view: view


# --- response shapes (documented for the schema; built by hand at run time for speed) ---


class RecoItemSerializer(serializers.Serializer):
    key = serializers.CharField()
    source = serializers.CharField(help_text="The list or fallback that produced the item.")  # type: ignore[assignment]
    reason = serializers.CharField(help_text='Short explanation, e.g. "Because you viewed ...".')
    reason_code = serializers.CharField()
    position = serializers.IntegerField(help_text="1-based.")
    score = serializers.FloatField()
    token = serializers.CharField(help_text="Attribution token: send it with the rec_click event.")
    product = AdapterProductSerializer()


class SlotResponseSerializer(serializers.Serializer):
    slot = serializers.CharField()
    version = serializers.IntegerField(allow_null=True, help_text="Score version id the lists came from.")
    count = serializers.IntegerField()
    items = RecoItemSerializer(many=True)
    anchor = AdapterProductSerializer(allow_null=True, required=False)
    bundle_price = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True, required=False)
    degraded = serializers.BooleanField(
        required=False, help_text="True when recommendations failed and an empty slot was returned."
    )


def _parameters(*extra: Any) -> list[Any]:
    if OpenApiParameter is None:
        return []
    common = [  # ?limit= comes from SlotSchema, with the bounds in force when the schema is generated
        OpenApiParameter(
            "exclude", OpenApiTypes.STR, description="Keys already on the page, comma-separated."
        ),
        OpenApiParameter("user", OpenApiTypes.STR, description="Staff only: preview a user's results."),
        OpenApiParameter("visitor", OpenApiTypes.STR, description="Staff only: preview a visitor's results."),
    ]
    return common + [OpenApiParameter(name, OpenApiTypes.STR, description=text) for name, text in extra]


def _responses(*, product: bool = False) -> dict[int, Any]:
    """The slot answer, and the errors a front end must expect (each a DRF error object)."""
    if OpenApiResponse is None:
        return {}
    responses: dict[int, Any] = {
        200: SlotResponseSerializer,
        400: OpenApiResponse(OpenApiTypes.OBJECT, description='A bad parameter, e.g. {"limit": ["..."]}.'),
        403: OpenApiResponse(OpenApiTypes.OBJECT, description="?user= or ?visitor= names someone else."),
    }
    if product:
        responses[404] = OpenApiResponse(OpenApiTypes.OBJECT, description="No such product.")
    return responses


def _keys(value: str | None) -> list[str]:
    return [key.strip() for key in (value or "").split(",") if key.strip()][:200]


if OpenApiParameter is not None:
    from drf_spectacular.openapi import AutoSchema

    class SlotSchema(AutoSchema):
        """Documents ``?limit=`` as 1..API_MAX_LIMIT, read when the schema is generated (not at import)."""

        def get_override_parameters(self) -> list[Any]:
            limit = OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": int(reco_settings.API_MAX_LIMIT)},
                description="How many items (1 to API_MAX_LIMIT).",
            )
            return [limit, *super().get_override_parameters()]

        def get_auth(self) -> list[dict[str, Any]]:
            # Anonymous shoppers read their own slots: authentication is optional.
            auth = super().get_auth()
            return auth if {} in auth else [*auth, {}]


# What the plain path answers (see SlotView.dispatch); anything else goes through DRF.
_PLAIN_ACCEPT = frozenset({"", "*/*", "application/json"})
_PLAIN_AUTHENTICATION = (SessionAuthentication, BasicAuthentication)
_ALLOW_HEADERS: dict[type, str] = {}


class _PlainRequest(Request):
    """DRF's request for the plain path: a request without a query string reads an empty QueryDict instead of
    parsing one (most storefront calls have none, and every slot reads several parameters)."""

    @property
    def query_params(self) -> QueryDict:  # type: ignore[override]  # the same immutable QueryDict
        if self._request.META.get("QUERY_STRING"):
            return self._request.GET
        return _no_params()


class _NoQueryParams(QueryDict):
    """An empty, immutable QueryDict whose ``get`` answers at once (QueryDict's raises and catches a
    KeyError per missing parameter, and a slot asks for several)."""

    def get(self, key: str, default: Any = None) -> Any:
        return default


@functools.cache
def _no_params() -> QueryDict:
    return _NoQueryParams()  # immutable: shared by every request without parameters


class SlotView(APIView):
    """Shared parsing, permissions, error handling and serialisation; subclasses name the slot."""

    slot = ""
    permission_classes = [ShopperPreviewPermission]
    if OpenApiParameter is not None:
        schema = SlotSchema()

    def parse_limit(self, request: Request) -> int | None:
        raw = request.query_params.get("limit")
        if raw is None or raw == "":
            return None
        maximum = int(reco_settings.API_MAX_LIMIT)
        try:
            limit = int(raw)
        except ValueError:
            raise ValidationError({"limit": [f"A whole number from 1 to {maximum} is required."]}) from None
        if not 1 <= limit <= maximum:
            raise ValidationError({"limit": [f"Must be from 1 to {maximum}."]})
        return limit

    def reco_context(self, request: Request) -> RecoContext:
        params = request.query_params
        shown = _keys(params.get("exclude"))
        cart = _keys(params.get("cart")) or None
        user, visitor = params.get("user"), params.get("visitor")
        if user or visitor:  # permission already checked: staff, or the shopper naming themself
            return context_for(None, user=user or None, visitor_id=visitor or "", cart=cart, shown=shown)
        return context_for(request._request, cart=cart, shown=shown)

    def compute(
        self, request: Request, context: RecoContext, limit: int | None, **kwargs: Any
    ) -> reco.SlotResult:
        raise NotImplementedError

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        """The storefront's common request answered without DRF's negotiation and rendering machinery.

        A plain GET (no Authorization header, JSON or any type accepted, no ?format, no staff preview) with
        the default authentication, permission, renderer and product serializer, and no throttles, gets the
        same JSON DRF would send; everything else, errors included, goes through DRF.
        """
        if self._plain_get(request):
            answer = self._answer_plainly(request, kwargs)
            if answer is not None:
                return answer
        return super().dispatch(request, *args, **kwargs)

    def _plain_get(self, request: HttpRequest) -> bool:
        meta = request.META
        return (
            request.method == "GET"
            and "HTTP_AUTHORIZATION" not in meta
            and meta.get("HTTP_ACCEPT", "*/*") in _PLAIN_ACCEPT
            and (
                not meta.get("QUERY_STRING")
                or not (request.GET.get("format") or request.GET.get("user") or request.GET.get("visitor"))
            )
            and not self.throttle_classes
            and self.permission_classes == [ShopperPreviewPermission]
            and all(cls in _PLAIN_AUTHENTICATION for cls in self.authentication_classes)
            and bool(self.renderer_classes)
            and self.renderer_classes[0] is JSONRenderer
            and product_serializer_class() is AdapterProductSerializer
        )

    def _answer_plainly(self, request: HttpRequest, kwargs: dict[str, Any]) -> HttpResponse | None:
        """The slot as DRF's JSONRenderer writes it, or None for DRF to answer (a 400 or 404, say)."""
        self.args, self.kwargs = (), kwargs
        # No authenticators: the slots read the shopper from the Django request, never from DRF's user.
        drf_request = _PlainRequest(request, authenticators=())
        self.request = drf_request
        try:
            outcome = self.slot_outcome(drf_request, **kwargs)
        except (Http404, ValidationError):
            return None
        body: bytes | None
        if isinstance(outcome, dict):
            body = JSONRenderer().render(outcome)
        else:
            context, result = outcome
            memo = result.memo if result.memo is not None and result.memo.renders else None
            # The same memoised items give the same bytes: render them once per memo.
            body = memo.rendered.get(self.slot) if memo is not None else None
            if body is None:
                body = JSONRenderer().render(self.serialise(drf_request, context, result))
                if memo is not None:
                    memo.rendered[self.slot] = body
        response = HttpResponse(body, content_type="application/json")
        # What DRF's finalize_response adds; the response is new, so it has no Vary to merge with yet.
        response.headers["Allow"] = self._allow_header()
        response.headers["Vary"] = "Accept"
        return response

    def _allow_header(self) -> str:
        # The same for every instance of a view class once set up (setup() adds HEAD): worked out once.
        allow = _ALLOW_HEADERS.get(type(self))
        if allow is None:
            allow = _ALLOW_HEADERS[type(self)] = ", ".join(self.allowed_methods)
        return allow

    def get(self, request: Request, **kwargs: Any) -> Response:
        return Response(self.slot_data(request, **kwargs))

    def slot_data(self, request: Request, **kwargs: Any) -> dict[str, Any]:
        outcome = self.slot_outcome(request, **kwargs)
        if isinstance(outcome, dict):
            return outcome
        return self.serialise(request, *outcome)

    def slot_outcome(
        self, request: Request, **kwargs: Any
    ) -> tuple[RecoContext, reco.SlotResult] | dict[str, Any]:
        """The slot computed and its impression recorded; or the answer of a slot that failed."""
        limit = self.parse_limit(request)
        context = self.reco_context(request)
        try:
            result = self.compute(request, context, limit, **kwargs)
        except (Http404, ValidationError):
            raise
        except Exception:
            # Never a 500 for a shop's front end: an empty slot, logged at error level.
            logger.exception("shop_reco endpoint %s failed; answering an empty slot", self.slot)
            return {"slot": self.slot, "version": None, "count": 0, "items": [], "degraded": True}
        if result.items and not (request.query_params.get("user") or request.query_params.get("visitor")):
            try:
                reco.record_impression(context, result)
            except Exception:
                logger.exception("shop_reco could not record the impression of slot %s", self.slot)
        return context, result

    def serialise(self, request: Request, context: RecoContext, result: reco.SlotResult) -> dict[str, Any]:
        serializer_class = product_serializer_class()
        serializer_context = {"request": request, "adapter": context.adapter}
        products = [item.product for item in result.items]
        if result.anchor is not None:
            products.append(result.anchor)
        if serializer_class is AdapterProductSerializer:
            # The items carry what the adapter serializer would ask the adapter for again.
            rendered = [_product_data(item) for item in result.items]
            if result.anchor is not None:
                rendered.append(_anchor_data(context, result.anchor, serializer_context))
        else:
            rendered = list(serializer_class(products, many=True, context=serializer_context).data)
        data: dict[str, Any] = {
            "slot": result.slot,
            "version": result.version_id,
            "count": len(result.items),
            "items": [
                {
                    "key": item.key,
                    "source": item.source,
                    "reason": item.reason,
                    "reason_code": item.reason_code,
                    "position": item.position,
                    "score": item.score,
                    "token": item.token,
                    "product": rendered[index],
                }
                for index, item in enumerate(result.items)
            ],
        }
        if result.anchor is not None:
            data["anchor"] = rendered[-1]
        if result.slot == reco.BOUGHT_TOGETHER:
            data["bundle_price"] = f"{result.bundle_price:.2f}" if result.bundle_price is not None else None
        return data


def _product_data(item: reco.RecoItem) -> dict[str, Any]:
    """``AdapterProductSerializer``'s representation, from the item's fields."""
    return {
        "key": item.key,
        "name": item.name,
        "url": item.url,
        "image": item.image_url,
        "price": f"{item.price:.2f}" if item.price is not None else None,
        "category": item.category,
    }


def _anchor_data(context: RecoContext, anchor: Any, serializer_context: dict[str, Any]) -> dict[str, Any]:
    """The page's own product, described from the row the slot loaded (once per cached row)."""
    key = context.adapter.product_key(anchor)
    row = context.products.get(key)
    if row is None or row.product is not anchor:
        return AdapterProductSerializer(context=serializer_context).to_representation(anchor)
    shown = reco.describe(context, row)
    price = shown["price"]
    return {
        "key": key,
        "name": shown["name"],
        "url": shown["url"],
        "image": shown["image_url"],
        "price": f"{price:.2f}" if price is not None else None,
        "category": row.category,
    }


class ProductSlotView(SlotView):
    def compute(
        self, request: Request, context: RecoContext, limit: int | None, product_key: str = "", **kwargs: Any
    ) -> reco.SlotResult:
        function = reco.similar_products if self.slot == reco.SIMILAR else reco.bought_together
        result = function(product_key, context=context, limit=limit)
        if result.anchor is None:
            raise Http404("No such product.")
        return result


@extend_schema(
    summary="Similar products",
    parameters=_parameters(),
    responses=_responses(product=True),
    tags=["recommendations"],
)
class SimilarView(ProductSlotView):
    slot = reco.SIMILAR


@extend_schema(
    summary="Frequently bought together, with the bundle price",
    parameters=_parameters(),
    responses=_responses(product=True),
    tags=["recommendations"],
)
class BoughtTogetherView(ProductSlotView):
    slot = reco.BOUGHT_TOGETHER


@extend_schema(
    summary="Recommended for the cart",
    parameters=_parameters(("cart", "Comma-separated product keys in the cart (default: the shop's cart).")),
    responses=_responses(),
    tags=["recommendations"],
)
class CartView(SlotView):
    slot = reco.CART

    def compute(
        self, request: Request, context: RecoContext, limit: int | None, **kwargs: Any
    ) -> reco.SlotResult:
        return reco.cart_recommendations(context=context, limit=limit)


@extend_schema(
    summary="Recommended for the current shopper",
    parameters=_parameters(),
    responses=_responses(),
    tags=["recommendations"],
)
class ForYouView(SlotView):
    slot = reco.FOR_YOU

    def compute(
        self, request: Request, context: RecoContext, limit: int | None, **kwargs: Any
    ) -> reco.SlotResult:
        return reco.recommended_for_you(context=context, limit=limit)


@extend_schema(
    summary="Trending overall or in a category",
    parameters=_parameters(("category", "A category name; omit for the whole shop.")),
    responses=_responses(),
    tags=["recommendations"],
)
class TrendingView(SlotView):
    slot = reco.TRENDING

    def compute(
        self, request: Request, context: RecoContext, limit: int | None, **kwargs: Any
    ) -> reco.SlotResult:
        return reco.trending(request.query_params.get("category") or None, context=context, limit=limit)


@extend_schema(
    summary="The current shopper's recently viewed products",
    parameters=_parameters(("product", "Leave out this product key (the page's own).")),
    responses=_responses(),
    tags=["recommendations"],
)
class RecentlyViewedView(SlotView):
    slot = reco.RECENTLY_VIEWED

    def compute(
        self, request: Request, context: RecoContext, limit: int | None, **kwargs: Any
    ) -> reco.SlotResult:
        exclude = request.query_params.get("product") or None
        return reco.recently_viewed(context=context, limit=limit, exclude_product=exclude)


@extend_schema(
    summary="Buy it again: the current shopper's past purchases",
    parameters=_parameters(),
    responses=_responses(),
    tags=["recommendations"],
)
class BuyAgainView(SlotView):
    slot = reco.BUY_AGAIN

    def compute(
        self, request: Request, context: RecoContext, limit: int | None, **kwargs: Any
    ) -> reco.SlotResult:
        return reco.buy_again(context=context, limit=limit)


# Included by shop_reco.urls under the app namespace.
urlpatterns = [
    path("api/similar/<str:product_key>/", SimilarView.as_view(), name="reco-similar"),
    path("api/bought-together/<str:product_key>/", BoughtTogetherView.as_view(), name="reco-bought-together"),
    path("api/cart/", CartView.as_view(), name="reco-cart"),
    path("api/for-you/", ForYouView.as_view(), name="reco-for-you"),
    path("api/trending/", TrendingView.as_view(), name="reco-trending"),
    path("api/recently-viewed/", RecentlyViewedView.as_view(), name="reco-recently-viewed"),
    path("api/buy-again/", BuyAgainView.as_view(), name="reco-buy-again"),
]

try:
    from drf_spectacular.views import SpectacularAPIView
except ImportError:  # pragma: no cover - the schema route exists only with drf-spectacular
    pass
else:
    urlpatterns.append(path("api/schema/", SpectacularAPIView.as_view(), name="reco-schema"))
