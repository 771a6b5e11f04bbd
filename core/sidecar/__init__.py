"""The wiring of `crmrules serve`: one process that runs the receiver, the evaluator and the dispatcher.

`server` starts the process (store, pipeline, receiver app under waitress, signals, the SIGHUP reloader);
`worker` holds the one thread that evaluates, fires timers, pushes and prunes between cycles, and the poller
thread that pulls sources. What answers HTTP stays in `crmrules.receiver`; this package only wires the boxes.
"""
