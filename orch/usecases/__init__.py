"""orch's use cases, a module each (spawn, query, control, recover, reap), each a set
of functions over an orch.runtime.Runtime; orch.api builds the runtime and calls them.
Helpers more than one of them needs live in common (views, look-ups, intents, results)
and launching (starting a record's unit)."""
