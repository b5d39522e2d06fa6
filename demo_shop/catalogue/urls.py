from django.urls import path

from demo_shop.catalogue import views

app_name = "catalogue"
urlpatterns = [
    path("", views.home, name="home"),
    path("category/<slug:slug>/", views.category, name="category"),
    path("product/<int:pk>/", views.product, name="product"),
    path("search/", views.search, name="search"),
]
