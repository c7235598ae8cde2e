"""What every app may import: no models, no settings of its own, nothing that imports an app.

`core` sits below `deployments`, `deliveries` and `reviews`; `config` (settings, URLs, the
NinjaAPI) sits above them all and no app imports it.
"""
