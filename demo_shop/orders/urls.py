from django.urls import path

from demo_shop.orders import views

app_name = "orders"
urlpatterns = [
    path("", views.checkout, name="checkout"),
    path("done/<str:number>/", views.done, name="done"),
    path("history/", views.history, name="history"),
]
