from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from demo_shop.catalogue.models import Category, Product


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "product_count")
    search_fields = ("name",)
    prepopulated_fields = {"slug": ("name",)}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Category]:
        return super().get_queryset(request).annotate(product_count=Count("products"))

    @admin.display(description="Products", ordering="product_count")
    def product_count(self, category: Category) -> int:
        return category.product_count  # type: ignore[attr-defined]


class StockFilter(admin.SimpleListFilter):
    title = "availability"
    parameter_name = "availability"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("in", "In stock"), ("low", "Low stock (under 10)"), ("out", "Out of stock")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Product]) -> QuerySet[Product]:
        match self.value():
            case "in":
                return queryset.filter(stock__gt=0)
            case "low":
                return queryset.filter(stock__gt=0, stock__lt=10)
            case "out":
                return queryset.filter(stock=0)
        return queryset


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "category", "price", "stock", "is_active")
    list_filter = (StockFilter, "is_active", "category")
    list_editable = ("price", "stock", "is_active")
    list_select_related = ("category",)
    search_fields = ("sku", "name", "description")
    list_per_page = 50
