"""Who may read whose recommendations."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from shop_reco.tracking.identity import get_visitor

# The admin preview's permission: reading someone else's recommendations shows their history.
PREVIEW_PERMISSION = "shop_reco.preview_recommendations"


def is_staff(request: Request) -> bool:
    """Staff holding the preview permission (superusers hold every permission)."""
    user = getattr(request, "user", None)
    return bool(
        user is not None and user.is_authenticated and user.is_staff and user.has_perm(PREVIEW_PERMISSION)
    )


class ShopperPreviewPermission(BasePermission):
    """A shopper reads only their own recommendations; staff with the preview permission (as in the admin's
    preview) may read anyone's with ?user= or ?visitor=.

    Naming yourself is allowed (a front end may always send its own id); naming anyone else is a 403.
    """

    message = "Only staff may read another shopper's recommendations."

    def has_permission(self, request: Request, view: Any) -> bool:
        user_param = request.query_params.get("user")
        visitor_param = request.query_params.get("visitor")
        if not user_param and not visitor_param:
            return True
        if is_staff(request):
            return True
        if user_param:
            user = request.user
            if not (user is not None and user.is_authenticated and str(user.pk) == user_param):
                return False
        if visitor_param:
            visitor = get_visitor(request._request)
            if visitor.is_new or visitor.id != visitor_param:
                return False
        return True
