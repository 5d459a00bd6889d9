"""TrackFlow worker: ``faust -A trackflow_app worker`` starts the edge, the stages and the sink."""

# Importing the stage and view modules registers their agents, services and pages on `app`.
import agents.stream
from trackflow_app.app import app

import agents.sink  # noqa: F401  isort:skip
import web.views  # isort:skip
import web.read.events  # isort:skip
import web.read.stats  # isort:skip
import web.read.dashboard  # noqa: F401  isort:skip

__all__ = ["app"]
