import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from shop_reco.adapters import DefaultShopAdapter, get_adapter
from shop_reco.conf import DEFAULTS, reco_settings


def test_defaults_apply_and_override_settings_reloads():
    assert reco_settings.LIST_LENGTH == DEFAULTS["LIST_LENGTH"]
    with override_settings(SHOP_RECO={"PRODUCT_MODEL": "catalogue.Product", "LIST_LENGTH": 7}):
        assert reco_settings.LIST_LENGTH == 7
    assert reco_settings.LIST_LENGTH == DEFAULTS["LIST_LENGTH"]


def test_partial_event_weights_keep_other_defaults():
    with override_settings(SHOP_RECO={"PRODUCT_MODEL": "catalogue.Product", "EVENT_WEIGHTS": {"view": 0.5}}):
        assert reco_settings.EVENT_WEIGHTS["view"] == 0.5
        assert reco_settings.EVENT_WEIGHTS["purchase"] == DEFAULTS["EVENT_WEIGHTS"]["purchase"]


def test_user_dict_is_never_mutated():
    user = {"PRODUCT_MODEL": "catalogue.Product", "EVENT_WEIGHTS": {"view": 0.5}}
    with override_settings(SHOP_RECO=user):
        _ = reco_settings.EVENT_WEIGHTS
    assert user == {"PRODUCT_MODEL": "catalogue.Product", "EVENT_WEIGHTS": {"view": 0.5}}


def test_bad_dotted_path_names_the_setting():
    bad = {"PRODUCT_MODEL": "catalogue.Product", "ADAPTER": "nope.Adapter"}
    with override_settings(SHOP_RECO=bad), pytest.raises(ImproperlyConfigured, match="ADAPTER"):
        get_adapter()


def test_unknown_setting_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="NOT_A_SETTING"):
        _ = reco_settings.NOT_A_SETTING


def test_custom_event_types_extend_the_builtin_ones():
    with override_settings(SHOP_RECO={"PRODUCT_MODEL": "catalogue.Product", "CUSTOM_EVENT_TYPES": ["share"]}):
        assert "share" in reco_settings.event_types
        assert "purchase" in reco_settings.event_types


@pytest.mark.django_db
def test_default_adapter_reads_plain_fields():
    from demo_shop.catalogue.models import Category, Product

    toys = Category.objects.create(name="Toys", slug="toys")
    in_stock = Product.objects.create(
        sku="1", name="Red ball", description="bouncy", category=toys, price=2, stock=3
    )
    Product.objects.create(sku="2", name="Blue ball", category=toys, price=2, stock=0)
    Product.objects.create(sku="3", name="Old ball", category=toys, price=2, stock=5, is_active=False)
    adapter = DefaultShopAdapter()
    assert list(adapter.available_products()) == [in_stock]
    assert adapter.product_text(in_stock) == "Red ball bouncy"
    assert adapter.product_category(in_stock) == "Toys"
    assert adapter.product_url(in_stock) == in_stock.get_absolute_url()
    assert adapter.products_by_key([str(in_stock.pk), "not-a-number", ""]) == {str(in_stock.pk): in_stock}
    assert set(adapter.category_keys("Toys").values_list("sku", flat=True)) == {"1", "2", "3"}
