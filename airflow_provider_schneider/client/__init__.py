"""Internal: the HTTP client of Schneider's APIs: one call as a value, its auth protocol, a transport that
always ends, retries that respect the gateway, bounded fan-out, page-number pagination."""
