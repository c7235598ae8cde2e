from django.urls import include, path

from reviews import views
from reviews.humans import views as humans_views

# The queues and the "Review next" flow through them ...
queues = [
    path("", views.queue, name="queue"),
    path("senior/", views.senior_queue, name="senior_queue"),
    path("audit/", views.audit_queue, name="audit_queue"),
    path("next", views.claim_next, name="claim_next"),
    path("counts", views.nav_counts, name="nav_counts"),
]
# ... one item's page and the claim a person holds on it while they work it ...
item = [
    path("", views.action_detail, name="action_detail"),
    path("claim", views.claim, name="claim"),
    path("release", views.release, name="release"),
]
# ... and what they decide on it.
decisions = [
    path("decide", views.decide, name="decide"),
    path("audit", views.audit_verdict, name="audit_verdict"),
    path("reconcile", views.reconcile, name="reconcile"),
    path("blind", humans_views.blind_answer, name="blind_answer"),
]
review_patterns = [
    path("queue/", include(queues)),
    path("actions/<int:action_id>/", include(item + decisions)),
]

urlpatterns = [
    # Not namespaced: LOGIN_REDIRECT_URL and base.html refer to "home".
    path("", views.home, name="home"),
    path("", include((review_patterns, "reviews"))),
]
