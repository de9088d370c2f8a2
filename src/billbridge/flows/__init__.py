"""Process flows: pure handlers of (event, state, configuration) → outcome."""
