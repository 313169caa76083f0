"""What the deploy pipeline, the pre-receive hook and the API say to each other.

Its own module, importing nothing, so the hook can read it without loading the pipeline.
"""

from __future__ import annotations

#: The last line of a deploy's output: ``corral-status: succeeded v3`` or ``... failed``.
STATUS_PREFIX = "corral-status: "
#: The last line of a one-off's output: ``corral-exit: N``.
EXIT_PREFIX = "corral-exit: "
#: The hook's environment variable naming its end of the socket to the API process.
HANDOFF_ENV = "CORRAL_DEPLOY_FD"
