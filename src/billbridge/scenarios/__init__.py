"""The scenario harness: business rules as data, run through the real engine."""
