from __future__ import annotations

from decimal import Decimal

from django.contrib import admin
from django.db.models import Count, DecimalField, ExpressionWrapper, F, QuerySet, Sum
from django.http import HttpRequest

from demo_shop.orders.models import Order, OrderLine


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    # A raw id keeps the page fast with thousands of products.
    raw_id_fields = ("product",)
    fields = ("product", "quantity", "unit_price")


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("number", "user", "email", "placed_at", "line_count", "order_total")
    list_select_related = ("user",)
    search_fields = ("number", "user__username", "email")
    date_hierarchy = "placed_at"
    raw_id_fields = ("user",)
    inlines = (OrderLineInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Order]:
        # Totals in SQL: Order.total would cost one query per row of the list.
        line_total = ExpressionWrapper(
            F("lines__quantity") * F("lines__unit_price"),
            output_field=DecimalField(max_digits=14, decimal_places=2),
        )
        return super().get_queryset(request).annotate(n_lines=Count("lines"), sum_total=Sum(line_total))

    @admin.display(description="Lines", ordering="n_lines")
    def line_count(self, order: Order) -> int:
        return order.n_lines  # type: ignore[attr-defined]

    @admin.display(description="Total", ordering="sum_total")
    def order_total(self, order: Order) -> Decimal:
        return order.sum_total or Decimal("0")  # type: ignore[attr-defined]
