"""TrackFlow worker: ``faust -A trackflow_app worker`` starts the edge, the stages and the sink."""

from trackflow_app.app import app

# Importing the stage and view modules registers their agents, services and pages on `app`.
import agents.stream  # noqa: E402,F401  isort:skip
import agents.sink  # noqa: E402,F401  isort:skip
import web.views  # noqa: E402,F401  isort:skip

__all__ = ["app"]
