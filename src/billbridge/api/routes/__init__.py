"""The API's routes, one router per OpenAPI tag; api.app assembles them."""
