"""The dispatcher's parts, one idea each: ``lanes`` (who sends which lane of a
target, and the hold that keeps a round's lanes while its calls are out),
``claiming`` (the commands a round sends and the target ids they refer to),
``pacing`` (the target's shared pace and circuit breaker), ``calls`` (one
call to the target) and ``settling`` (recording what came back). The round
that runs them in order is ``engine.dispatcher.Dispatcher``."""
