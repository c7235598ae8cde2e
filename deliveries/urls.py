from django.urls import path

from deliveries import views

app_name = "deliveries"

urlpatterns = [
    path("deliveries/", views.delivery_list_view, name="list"),
    path("deliveries/<int:delivery_id>/", views.delivery_detail_view, name="detail"),
    path("deliveries/<int:delivery_id>/redeliver", views.delivery_redeliver_view, name="redeliver"),
    path("deliveries/secret/<slug:slug>/rotate", views.webhook_secret_rotate_view, name="rotate_secret"),
]
