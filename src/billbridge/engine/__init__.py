"""The runtime: inbox, workers, transactional outbox, dispatcher, exception queue."""
