"""Set some fields of a model instance and save only those (HackSoft's `model_update`)."""

from typing import Any

from django.db import models


def model_update(instance: models.Model, **values: Any) -> models.Model:
    """Set each of `values` on `instance` and save just those fields, in one UPDATE.
    The caller holds the row lock when the new values depend on the old ones."""
    for field, value in values.items():
        setattr(instance, field, value)
    instance.save(update_fields=list(values))
    return instance
