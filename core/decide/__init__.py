"""The decide stage: an event (or a due timer) and the entity it is about → decisions, actions, timers, goals.

One package, one module per concern; `evaluator.py` runs the stage and is the only module that calls the
others in sequence (see its docstring for the pass loop). Nothing here reads or writes the store: the pipeline
loads the state before and saves the `Outcome` after.

- compiler.py: rules → durable-rules rulesets over a flat snapshot of slots (the split of who computes what)
- matchers.py: matching a snapshot, in durable-rules and in its plain-Python twin
- slots.py: the value of each slot (fields, dates, counts, sequences, absences); predicates.py: one value's tests
- state.py: the per-entity state the host keeps (fields, history, limits, score)
- trigger.py: what one evaluation reads (`Trigger`, `Context`); trust.py: what a trigger may unlock
- timers.py: the timers an evaluation arms; calendar.py: business and quiet hours
- goals.py: goals that came true, for the pipeline to cancel and record
- guards.py: groups, limits, cooldowns, consent, caps, quiet hours
- actions.py: a rule's `then:` items built into actions; records.py: the decision record and outbox items
- describe.py: condition parts in words
"""
