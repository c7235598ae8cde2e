from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

from reviews.humans.models import DrillTemplate
from reviews.models import Decision, ProposedAction


class EstimatedCountPaginator(Paginator):
    """A paginator that does not COUNT(*) a whole large table on PostgreSQL.

    An unfiltered queryset is counted from the planner's statistics (`pg_class.reltuples`,
    as fresh as the last ANALYZE or autovacuum), so the total and the last page numbers of a
    large table are approximate. A filtered queryset, a table the statistics put below
    `exact_below` rows, and any other database get the exact count.
    """

    # Counting this few rows exactly is cheap, and an estimate may lag behind them.
    exact_below = 10_000

    @cached_property
    def count(self) -> int:
        estimate = self._estimated_count()
        return estimate if estimate is not None and estimate >= self.exact_below else super().count

    def _estimated_count(self) -> int | None:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return None
        query = queryset.query
        if query.has_filters() or query.is_sliced or query.combinator:
            return None
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                [connection.ops.quote_name(queryset.model._meta.db_table)],
            )
            row = cursor.fetchone()
        return row[0] if row else None  # -1: never analyzed


@admin.register(ProposedAction)
class ProposedActionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "deployment",
        "action_type",
        "status",
        "route",
        "risk_score",
        "confidence",
        "created_at",
    ]
    list_filter = ["status", "route"]
    list_select_related = ["deployment"]
    # The changelist must not grow with the table: no COUNT(*) over all rows (neither the
    # "N total" link nor the paginator's count), and newest first by primary key, which the
    # primary key index serves without sorting (the model's created_at order has no such index).
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    ordering = ["-id"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # transitions go through reviews.services only

    def has_add_permission(self, request) -> bool:
        return False  # proposals come from the API, routed by policy

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a deleted rejection would let the same proposal be queued again


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    """Decisions are immutable evidence: shown, never added, changed or deleted here."""

    list_display = ["created_at", "action", "verb", "actor"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(DrillTemplate)
class DrillTemplateAdmin(admin.ModelAdmin):
    """Fire drills (reviews/humans/drills.py): known-bad sample actions, per action type."""

    list_display = ("action_type", "deployment", "active", "what_is_wrong", "created_at")
    list_filter = ("active", "deployment")
    search_fields = ("action_type", "what_is_wrong")
