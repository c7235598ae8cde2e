from django.urls import include, path

from reviews import views
from reviews.humans import views as humans_views

review_patterns = [
    path("queue/", views.queue, name="queue"),
    path("queue/senior/", views.senior_queue, name="senior_queue"),
    path("queue/audit/", views.audit_queue, name="audit_queue"),
    path("queue/next", views.claim_next, name="claim_next"),
    path("queue/counts", views.nav_counts, name="nav_counts"),
    path("actions/<int:action_id>/", views.action_detail, name="action_detail"),
    path("actions/<int:action_id>/decide", views.decide, name="decide"),
    path("actions/<int:action_id>/audit", views.audit_verdict, name="audit_verdict"),
    path("actions/<int:action_id>/reconcile", views.reconcile, name="reconcile"),
    path("actions/<int:action_id>/blind", humans_views.blind_answer, name="blind_answer"),
    path("actions/<int:action_id>/claim", views.claim, name="claim"),
    path("actions/<int:action_id>/release", views.release, name="release"),
]

urlpatterns = [
    # Not namespaced: LOGIN_REDIRECT_URL and base.html refer to "home".
    path("", views.home, name="home"),
    path("", include((review_patterns, "reviews"))),
]
