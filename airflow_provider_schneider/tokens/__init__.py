"""Internal: OAuth 2.0 client-credentials tokens: the token value, the flow at the token endpoint, bearer
auth for the client, and the cache that reuses one token across runs, processes and hosts (tiers, sealing,
the cross-host lease)."""
