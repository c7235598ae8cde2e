from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config.api import api
from config.docs import doc_page
from config.health import healthz
from config.metrics import metrics

# Database unavailability that escapes a middleware is a 503 too (see config/unavailable.py).
handler500 = "config.unavailable.server_error"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("api/v1/", api.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("docs/<slug:name>/", doc_page, name="docs"),
    path("", include("reviews.urls")),
    path("", include("reviews.shadow.urls")),
    path("", include("deployments.urls")),
    path("", include("deliveries.urls")),
    path("", include("integrations.urls")),
]

if settings.BENCH_NOOP:
    from config.bench import noop

    urlpatterns.insert(0, path("bench/noop", noop))
