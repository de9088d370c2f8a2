"""Use cases: what the API, the console and the CLI do, written once as plain
functions over a connection (or the engine, when a use case commits more than
once) returning typed results. The faces parse, call one use case and render;
none of them touches a table. Refusals are billbridge.errors."""
