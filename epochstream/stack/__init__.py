"""The local all-in-one stack behind `epochstream up` and `epochstream demo`.

One process (the supervisor) owns: the embedded broker (only when no EPOCHSTREAM_REDIS_URL is set; its
append-only data under <data_dir>/broker so a restart loses nothing), N RQ worker processes, the drain
scheduler and the API. Children run in their own sessions so a Ctrl-C in the terminal reaches only the
supervisor, which then shuts them down in order: scheduler, workers (warm: they finish their job), a final
burst drain of what is still in the streams, the API, the broker.

A second stack on the same data directory is refused by an exclusive `flock` on <data_dir>/stack.lock,
which the kernel releases when the holder dies (no stale pid files to clean up by hand).

Modules: `supervisor` (the `Stack`: start, supervise, stop), `children` (one child process), `broker`
(the given or embedded broker: checks at start, drain locks at the final drain), `state` (the data
directory's lock and the state file), `ports`, `errors`.
"""

from epochstream.stack.broker import masked, persistence_warning, release_drain_locks
from epochstream.stack.children import Child, cli_command
from epochstream.stack.errors import StackAlreadyRunning, StackFailed
from epochstream.stack.ports import api_answers, pick_port, port_free
from epochstream.stack.state import read_state, running_stack
from epochstream.stack.supervisor import Stack

__all__ = ["Child", "Stack", "StackAlreadyRunning", "StackFailed", "api_answers", "cli_command", "masked",
           "persistence_warning", "pick_port", "port_free", "read_state", "release_drain_locks", "running_stack"]
